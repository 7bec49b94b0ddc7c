//! Response bodies: a whole JSON document, or an SSE answer generated one event per frame.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use super::wire::{sse_event, Answer, ChatChunkChoice, Delta, Endpoint, Envelope, TextChoice};
use super::{mock_token_text, Shared};

/// The next event a stream emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Role,
    Token(u64),
    Finish,
    Usage,
    Done,
    End,
}

/// An SSE answer generated lazily, one event per body frame. Generation happens only when hyper
/// polls for the next frame, so a client that goes away simply stops the polling: the body is
/// dropped with its connection and nothing keeps running.
pub struct SseStream {
    shared: Arc<Shared>,
    answer: Answer,
    include_usage: bool,
    step: Step,
    /// Reused between tokens instead of allocating a timer per chunk.
    delay: Option<Pin<Box<Sleep>>>,
    /// Whether `delay` must elapse before the next event.
    delay_armed: bool,
}

impl SseStream {
    /// A stream that has emitted nothing yet; chat answers open with the assistant-role chunk.
    pub fn new(shared: Arc<Shared>, answer: Answer, include_usage: bool) -> SseStream {
        let step = match answer.endpoint {
            Endpoint::Chat => Step::Role,
            Endpoint::Text => Step::Token(0),
        };
        SseStream {
            shared,
            answer,
            include_usage,
            step,
            delay: None,
            delay_armed: false,
        }
    }

    fn poll_event(&mut self, context: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.delay_armed {
            if let Some(delay) = self.delay.as_mut() {
                ready!(delay.as_mut().poll(context));
            }
            self.delay_armed = false;
        }
        let answer = &self.answer;
        let event = match self.step {
            Step::Role => {
                self.step = self.after_tokens_from(0);
                sse_event(&Envelope {
                    id: &answer.id,
                    object: "chat.completion.chunk",
                    created: answer.created,
                    model: &answer.model,
                    choices: [ChatChunkChoice {
                        index: 0,
                        delta: Delta {
                            role: Some("assistant"),
                            content: Some(""),
                        },
                        finish_reason: None,
                    }],
                    usage: None,
                })
            }
            Step::Token(index) if index >= answer.completion_tokens => {
                self.step = Step::Finish;
                return self.poll_event(context);
            }
            Step::Token(index) => {
                let text = mock_token_text(&self.shared.config, index as usize);
                let event = self.chunk_event(Some(&text), None);
                self.step = self.after_tokens_from(index + 1);
                if matches!(self.step, Step::Token(_)) {
                    self.arm_delay();
                }
                event
            }
            Step::Finish => {
                self.step = if self.include_usage {
                    Step::Usage
                } else {
                    Step::Done
                };
                self.chunk_event(None, Some(self.answer.finish_reason))
            }
            Step::Usage => {
                self.step = Step::Done;
                let object = match answer.endpoint {
                    Endpoint::Chat => "chat.completion.chunk",
                    Endpoint::Text => "text_completion",
                };
                sse_event(&Envelope {
                    id: &answer.id,
                    object,
                    created: answer.created,
                    model: &answer.model,
                    choices: [(); 0],
                    usage: Some(answer.usage()),
                })
            }
            Step::Done => {
                self.step = Step::End;
                // Counted when the answer is complete, matching the non-streaming path.
                self.shared.requests_served.fetch_add(1, Ordering::SeqCst);
                Bytes::from_static(b"data: [DONE]\n\n")
            }
            Step::End => return Poll::Ready(None),
        };
        Poll::Ready(Some(event))
    }

    /// The step that emits token `index`, or the finish chunk once all tokens are out.
    fn after_tokens_from(&self, index: u64) -> Step {
        if index < self.answer.completion_tokens {
            Step::Token(index)
        } else {
            Step::Finish
        }
    }

    fn arm_delay(&mut self) {
        let chunk_delay = self.shared.config.chunk_delay;
        if chunk_delay.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now() + chunk_delay;
        match self.delay.as_mut() {
            Some(delay) => delay.as_mut().reset(deadline),
            None => self.delay = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.delay_armed = true;
    }

    /// A token chunk (`text` set) or the finish chunk (`finish_reason` set).
    fn chunk_event(&self, text: Option<&str>, finish_reason: Option<&str>) -> Bytes {
        let answer = &self.answer;
        match answer.endpoint {
            Endpoint::Chat => sse_event(&Envelope {
                id: &answer.id,
                object: "chat.completion.chunk",
                created: answer.created,
                model: &answer.model,
                choices: [ChatChunkChoice {
                    index: 0,
                    delta: Delta {
                        role: None,
                        content: text,
                    },
                    finish_reason,
                }],
                usage: None,
            }),
            Endpoint::Text => sse_event(&Envelope {
                id: &answer.id,
                object: "text_completion",
                created: answer.created,
                model: &answer.model,
                choices: [TextChoice {
                    index: 0,
                    text: text.unwrap_or(""),
                    finish_reason,
                }],
                usage: None,
            }),
        }
    }
}

/// Response body: a whole JSON document, or an SSE stream written frame by frame.
pub enum MockBody {
    Full(Option<Bytes>),
    Sse(Box<SseStream>),
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            MockBody::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            MockBody::Sse(stream) => stream
                .poll_event(context)
                .map(|event| event.map(|bytes| Ok(Frame::data(bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(bytes) => bytes.is_none(),
            MockBody::Sse(stream) => stream.step == Step::End,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            // An exact hint lets hyper send Content-Length instead of chunked encoding.
            MockBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            MockBody::Sse(_) => SizeHint::default(),
        }
    }
}
