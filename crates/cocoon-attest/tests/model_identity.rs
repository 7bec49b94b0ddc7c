//! A worker's model identity in its attested claims (issue 14): the model hash (SHA-256 of the
//! model name it announces) and the weights digest ride in the claims the quote vouches for;
//! policies may require either, each missing or unlisted value is refused with its own error,
//! and a certificate's claimed model must be the one its worker announces.

use std::time::SystemTime;

use cocoon_attest::cert::{build_identity_parts, generate_identity_with_extras};
use cocoon_attest::policy::{danger, AllowLists, AttestError};
use cocoon_attest::provider::danger::FakeTdx;
use cocoon_attest::provider::QuoteProvider;
use cocoon_attest::{
    check_claimed_model, claims_of, model_hash, ClaimsExtras, PeerPolicyConfig, UserClaims,
};
use cocoon_net::policy::OID_TDX_QUOTE;
use rcgen::{KeyPair, PKCS_ED25519};
use sha2::{Digest, Sha256};

const MODEL: &str = "Qwen/Qwen3-0.6B";
const WEIGHTS: [u8; 32] = [0x5a; 32];

fn worker_certificate(extras: &ClaimsExtras) -> Vec<u8> {
    generate_identity_with_extras(
        &FakeTdx::new(None),
        None,
        "cocoon-worker",
        SystemTime::now(),
        extras,
    )
    .unwrap()
    .tls
    .cert_der
}

fn full_identity() -> ClaimsExtras {
    ClaimsExtras {
        sealing_key: Some([1; 32]),
        model_hash: Some(model_hash(MODEL)),
        weights_digest: Some(WEIGHTS),
    }
}

#[test]
fn the_model_hash_is_sha256_of_the_exact_name() {
    assert_eq!(
        model_hash(MODEL).to_vec(),
        Sha256::digest(MODEL.as_bytes()).to_vec()
    );
    assert_ne!(model_hash(MODEL), model_hash(&MODEL.to_lowercase()));
    assert_ne!(model_hash(MODEL), model_hash(&format!("{MODEL} ")));
}

#[test]
fn the_certificate_s_claims_carry_the_model_identity_and_the_policy_exposes_it() {
    let extras = full_identity();
    let cert = worker_certificate(&extras);
    let claims = claims_of(&cert, SystemTime::now()).unwrap();
    assert_eq!(claims.hpke_public_key, extras.sealing_key);
    assert_eq!(claims.model_hash, extras.model_hash);
    assert_eq!(claims.weights_digest, extras.weights_digest);

    let open = danger::fake_tdx(AllowLists::default());
    let peer = open.check(&cert, SystemTime::now()).unwrap();
    assert_eq!(peer.model_hash, Some(model_hash(MODEL)));
    assert_eq!(peer.weights_digest, Some(WEIGHTS));
    assert_eq!(peer.sealing_key, Some([1; 32]));

    // Without extras the claims stay the reference's bare key.
    let bare = worker_certificate(&ClaimsExtras::default());
    let facts = cocoon_attest::parse_certificate(&bare, SystemTime::now()).unwrap();
    assert_eq!(facts.user_claims.as_deref(), Some(&facts.public_key[..]));
    let peer = open.check(&bare, SystemTime::now()).unwrap();
    assert_eq!((peer.model_hash, peer.weights_digest), (None, None));
}

#[test]
fn a_required_model_hash_or_weights_digest_that_is_missing_is_refused_with_its_own_error() {
    let now = SystemTime::now();
    let bare = worker_certificate(&ClaimsExtras::default());
    let weights_only = worker_certificate(&ClaimsExtras {
        weights_digest: Some(WEIGHTS),
        ..ClaimsExtras::default()
    });
    let model_only = worker_certificate(&ClaimsExtras {
        model_hash: Some(model_hash(MODEL)),
        ..ClaimsExtras::default()
    });

    let require_model = danger::fake_tdx(AllowLists {
        require_model_hash: true,
        ..AllowLists::default()
    });
    for cert in [&bare, &weights_only] {
        let refused = require_model.check(cert, now).unwrap_err();
        assert!(
            matches!(refused, AttestError::MissingModelHash),
            "{refused}"
        );
    }
    assert!(require_model.check(&model_only, now).is_ok());

    let require_weights = danger::fake_tdx(AllowLists {
        require_weights_digest: true,
        ..AllowLists::default()
    });
    for cert in [&bare, &model_only] {
        let refused = require_weights.check(cert, now).unwrap_err();
        assert!(
            matches!(refused, AttestError::MissingWeightsDigest),
            "{refused}"
        );
    }
    assert!(require_weights.check(&weights_only, now).is_ok());

    // A list implies the requirement.
    let listed = danger::fake_tdx(AllowLists {
        model_hashes: vec![model_hash(MODEL)],
        ..AllowLists::default()
    });
    assert!(matches!(
        listed.check(&bare, now).unwrap_err(),
        AttestError::MissingModelHash
    ));
    let listed = danger::fake_tdx(AllowLists {
        weights_digests: vec![WEIGHTS],
        ..AllowLists::default()
    });
    assert!(matches!(
        listed.check(&model_only, now).unwrap_err(),
        AttestError::MissingWeightsDigest
    ));
}

#[test]
fn values_off_the_allow_lists_are_refused_and_listed_ones_accepted() {
    let now = SystemTime::now();
    let cert = worker_certificate(&full_identity());

    let other_model = danger::fake_tdx(AllowLists {
        model_hashes: vec![model_hash("another/model")],
        ..AllowLists::default()
    });
    match other_model.check(&cert, now).unwrap_err() {
        AttestError::ModelHashNotAllowed(hash) => {
            assert_eq!(hash, cocoon_attest::hex(&model_hash(MODEL)))
        }
        other => panic!("{other}"),
    }
    let other_weights = danger::fake_tdx(AllowLists {
        weights_digests: vec![[0x11; 32]],
        ..AllowLists::default()
    });
    match other_weights.check(&cert, now).unwrap_err() {
        AttestError::WeightsDigestNotAllowed(digest) => {
            assert_eq!(digest, cocoon_attest::hex(&WEIGHTS))
        }
        other => panic!("{other}"),
    }

    let both = danger::fake_tdx(AllowLists {
        model_hashes: vec![model_hash("another/model"), model_hash(MODEL)],
        weights_digests: vec![WEIGHTS],
        require_model_hash: true,
        require_weights_digest: true,
        ..AllowLists::default()
    });
    let peer = both.check(&cert, now).unwrap();
    assert_eq!(peer.model_hash, Some(model_hash(MODEL)));
    assert_eq!(peer.weights_digest, Some(WEIGHTS));
}

#[test]
fn claims_the_quote_does_not_vouch_for_are_refused() {
    // A certificate whose claims name a model its quote was not made over: the report data is
    // SHA-512 of other claims, so the model hash cannot be spliced in.
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let public_key: [u8; 32] = key.public_key_raw().try_into().unwrap();
    let honest = UserClaims::for_key(public_key);
    let quote = FakeTdx::new(None).quote(&honest.report_data()).unwrap();
    let spliced = UserClaims {
        model_hash: Some(model_hash(MODEL)),
        ..honest
    };
    let identity = build_identity_parts(
        key,
        quote,
        OID_TDX_QUOTE,
        spliced,
        None,
        "forger",
        SystemTime::now(),
        Vec::new(),
    )
    .unwrap();
    let refused = danger::fake_tdx(AllowLists::default())
        .check(&identity.tls.cert_der, SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(refused, AttestError::ReportDataMismatch),
        "{refused}"
    );
}

#[test]
fn a_claimed_model_must_be_the_announced_one() {
    let now = SystemTime::now();
    let cert = worker_certificate(&full_identity());
    assert!(check_claimed_model(&cert, now, MODEL).is_ok());
    let refused = check_claimed_model(&cert, now, "another/model").unwrap_err();
    assert!(
        refused.contains(&cocoon_attest::hex(&model_hash(MODEL)))
            && refused.contains("another/model"),
        "{refused}"
    );
    // No model hash in the claims (the reference's workers): nothing to compare.
    let bare = worker_certificate(&ClaimsExtras::default());
    assert!(check_claimed_model(&bare, now, "any/model").is_ok());
    assert!(check_claimed_model(b"not a certificate", now, MODEL).is_err());
}

#[test]
fn policy_tables_parse_the_model_keys_and_refuse_bad_ones() {
    let table = |json: &str| -> PeerPolicyConfig { serde_json::from_str(json).unwrap() };
    let hash = cocoon_attest::hex(&model_hash(MODEL));
    let weights = cocoon_attest::hex(&WEIGHTS);
    let config = table(&format!(
        r#"{{"policy": "danger_fake_tdx", "model_hashes": ["{hash}"], "weights_sha256": ["{weights}"]}}"#
    ));
    assert!(config.problems("worker_policy").is_empty());
    let policy = config.build().unwrap().policy;
    let now = SystemTime::now();
    assert!(policy
        .verify_peer(&worker_certificate(&full_identity()), now)
        .is_ok());
    let refused = policy
        .verify_peer(&worker_certificate(&ClaimsExtras::default()), now)
        .unwrap_err();
    assert!(refused.to_string().contains("no model hash"), "{refused}");

    let required = table(r#"{"policy": "danger_fake_tdx", "require_weights_digest": true}"#);
    let refused = required
        .build()
        .unwrap()
        .policy
        .verify_peer(
            &worker_certificate(&ClaimsExtras {
                model_hash: Some(model_hash(MODEL)),
                ..ClaimsExtras::default()
            }),
            now,
        )
        .unwrap_err();
    assert!(
        refused.to_string().contains("no weights digest"),
        "{refused}"
    );

    let short = table(r#"{"policy": "danger_fake_tdx", "weights_sha256": ["abcd"]}"#);
    let problems = short.problems("worker_policy");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("worker_policy.weights_sha256"));
    let any = table(r#"{"policy": "danger_any", "require_model_hash": true}"#);
    let problems = any.problems("worker_policy");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("attesting policy"), "{problems:?}");
}
