//! The proof-of-work gate that precedes TLS on every hop (anti-DoS): the server sends a
//! challenge, the client burns CPU to answer it, and only then does the server spend CPU on a
//! TLS handshake.

use cocoon_proto::pow::{PowChallenge, PowResponse, POW_CHALLENGE_LEN, POW_RESPONSE_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::NetError;

/// Server side: challenge the client and check its answer.
pub(crate) async fn server_gate<S>(stream: &mut S, difficulty_bits: i32) -> Result<(), NetError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let challenge = PowChallenge {
        difficulty_bits,
        salt: rand::random(),
    };
    stream.write_all(&challenge.to_bytes()).await?;
    let mut response = [0u8; POW_RESPONSE_LEN];
    stream.read_exact(&mut response).await?;
    let response = PowResponse::from_bytes(&response).map_err(|e| NetError::Pow(e.to_string()))?;
    if !challenge.verify(response.nonce) {
        return Err(NetError::PowRejected);
    }
    Ok(())
}

/// Client side: read the challenge, refuse one harder than `max_difficulty_bits`, solve it off
/// the async threads, and answer.
pub(crate) async fn client_solve<S>(
    stream: &mut S,
    max_difficulty_bits: i32,
) -> Result<(), NetError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut raw = [0u8; POW_CHALLENGE_LEN];
    stream.read_exact(&mut raw).await?;
    let challenge = PowChallenge::from_bytes(&raw).map_err(|e| NetError::Pow(e.to_string()))?;
    if challenge.difficulty_bits > max_difficulty_bits {
        return Err(NetError::PowTooHard {
            difficulty: challenge.difficulty_bits,
            max: max_difficulty_bits,
        });
    }
    let start: i64 = rand::random();
    let nonce = tokio::task::spawn_blocking(move || challenge.solve(start, u64::MAX))
        .await
        .map_err(|e| NetError::Pow(format!("solver task failed: {e}")))?
        .ok_or_else(|| NetError::Pow("no nonce found".into()))?;
    stream.write_all(&PowResponse { nonce }.to_bytes()).await?;
    Ok(())
}
