//! Signed receipts with real RA-TLS identities (fake TDX quotes): a worker's receipt verifies
//! under its certificate, and every kind of tampering is refused with its own error.

use std::time::SystemTime;

use cocoon_attest::generate_identity_sealing;
use cocoon_attest::provider::danger::FakeTdx;
use cocoon_attest::receipt::{
    request_hash, Expected, Receipt, ReceiptBody, ReceiptError, ReceiptSigner, ReceiptTokens,
};
use cocoon_attest::sealed::{seal_request, RequestContext, WorkerKey};

const MODEL: &str = "SmolLM2-135M-Instruct";

struct Worker {
    signer: ReceiptSigner,
    sealing: WorkerKey,
}

fn worker(seed: u8) -> Worker {
    let sealing = WorkerKey::from_seed(&[seed; 32]);
    let identity = generate_identity_sealing(
        &FakeTdx::new(None),
        None,
        "worker",
        SystemTime::now(),
        Some(sealing.public_key()),
    )
    .unwrap();
    Worker {
        signer: ReceiptSigner::new(&identity.tls).unwrap(),
        sealing,
    }
}

/// A sealed request served by `worker`: its receipt and what the client expects of it.
fn served(worker: &Worker, answer: &[u8], billed: u64) -> (Receipt, Expected<'static>) {
    let context = RequestContext {
        model: MODEL,
        request_id: [5; 32],
    };
    let (sealed, mut opener) =
        seal_request(&worker.sealing.public_key(), &context, b"request").unwrap();
    let (_, mut sealer) = worker.sealing.open_request(&context, &sealed).unwrap();
    let mut wire = Vec::new();
    sealer.seal(answer, true, &mut wire);
    let mut plain = Vec::new();
    opener.push(&wire, &mut plain).unwrap();
    opener.finish().unwrap();
    let receipt = worker.signer.sign(ReceiptBody {
        worker_key: [0; 32],
        client_request_id: context.request_id,
        request_hash: request_hash(&sealed),
        answer_hash: sealer.answer_hash(),
        model: MODEL.into(),
        tokens: ReceiptTokens {
            prompt: 12,
            cached: 0,
            completion: 30,
            reasoning: 0,
            total: 42,
        },
        coefficient: 1000,
        finished_at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    });
    let expected = Expected {
        worker_key: worker.signer.public_key(),
        worker_certificate: None,
        sealing_key: worker.sealing.public_key(),
        client_request_id: context.request_id,
        request_hash: request_hash(&sealed),
        answer_hash: opener.answer_hash(),
        model: MODEL,
        billed_total: billed,
    };
    (receipt, expected)
}

#[test]
fn a_receipt_verifies_under_its_certificate_and_matches_the_request_it_served() {
    let w = worker(1);
    let (receipt, expected) = served(&w, b"Paris.", 42);
    assert_eq!(receipt.body.worker_key, w.signer.public_key());
    receipt.verify_signature().unwrap();
    receipt.check_for(&expected).unwrap();
    let again = Receipt::from_bytes(&receipt.to_bytes()).unwrap();
    again.check_for(&expected).unwrap();
    assert_eq!(again.hash(), receipt.hash());
    // Billed below the receipt (the proxy capped it at the reservation) is fine.
    receipt
        .check_for(&Expected {
            billed_total: 40,
            ..expected
        })
        .unwrap();
}

#[test]
fn every_tampering_with_a_receipt_has_its_own_error() {
    let w = worker(1);
    let (receipt, expected) = served(&w, b"Paris.", 42);

    let mut more_tokens = receipt.clone();
    more_tokens.body.tokens.total = 4200;
    assert_eq!(more_tokens.verify_signature(), Err(ReceiptError::Signature));

    let mut fewer_tokens = receipt.clone();
    fewer_tokens.body.tokens.completion = 1;
    assert_eq!(
        fewer_tokens.check_for(&expected),
        Err(ReceiptError::Signature)
    );

    // Another attested worker's receipt (its own, valid) for the same request.
    let other = worker(2);
    let (foreign, _) = served(&other, b"Paris.", 42);
    assert!(matches!(
        foreign.check_for(&expected),
        Err(ReceiptError::ForeignKey { .. })
    ));

    // A valid signature, but the certificate swapped for another worker's.
    let mut swapped = receipt.clone();
    swapped.certificate = foreign.certificate.clone();
    assert!(matches!(
        swapped.verify_signature(),
        Err(ReceiptError::Certificate(_))
    ));

    // The key in the body changed to the other worker's, certificate to match: the signature
    // was made by the first key.
    let mut rekeyed = receipt.clone();
    rekeyed.body.worker_key = foreign.body.worker_key;
    rekeyed.certificate = foreign.certificate.clone();
    assert_eq!(rekeyed.verify_signature(), Err(ReceiptError::Signature));

    // The worker's receipt for another request, another answer, another model.
    let (_, other_request) = served(&w, b"Paris.", 42);
    assert_eq!(
        receipt.check_for(&other_request),
        Err(ReceiptError::Request)
    );
    let (other_answer, _) = served(&w, b"Lyon.", 42);
    let mut same_request = other_answer.clone();
    same_request.body.request_hash = expected.request_hash;
    let same_request = w.signer.sign(same_request.body);
    assert_eq!(
        same_request.check_for(&expected),
        Err(ReceiptError::Answer),
        "signed for another answer than the one received"
    );
    let mut model = receipt.body.clone();
    model.model = "another-model".into();
    assert_eq!(
        w.signer.sign(model).check_for(&expected),
        Err(ReceiptError::Model("another-model".into()))
    );

    // The proxy billed more than the worker signed for.
    assert_eq!(
        receipt.check_for(&Expected {
            billed_total: 43,
            ..expected.clone()
        }),
        Err(ReceiptError::OverCharged {
            billed: 43,
            signed: 42
        })
    );

    // Flipping any byte of the wire form is caught by one check or another.
    let bytes = receipt.to_bytes();
    for at in (0..bytes.len()).step_by(7) {
        let mut changed = bytes.clone();
        changed[at] ^= 0x40;
        let caught = Receipt::from_bytes(&changed)
            .and_then(|r| r.check_for(&expected))
            .is_err();
        assert!(
            caught,
            "a change at byte {at} of {} went unnoticed",
            bytes.len()
        );
    }
}

#[test]
fn a_receipt_from_the_same_worker_after_its_certificate_renewed_is_accepted() {
    let w = worker(1);
    let (receipt, expected) = served(&w, b"Paris.", 42);
    // The same worker (same sealing key) with its next hourly certificate.
    let renewed = generate_identity_sealing(
        &FakeTdx::new(None),
        None,
        "worker",
        SystemTime::now(),
        Some(w.sealing.public_key()),
    )
    .unwrap();
    let signer = ReceiptSigner::new(&renewed.tls).unwrap();
    let resigned = signer.sign(receipt.body.clone());
    assert_ne!(resigned.body.worker_key, expected.worker_key);
    resigned.check_for(&expected).unwrap();
}
