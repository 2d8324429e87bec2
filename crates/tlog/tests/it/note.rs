//! Signed notes and checkpoints: Go's `note` package known answers, real sum.golang.org
//! checkpoints, a checkpoint rebuilt by hand from the C2SP specs, and refusals.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};
use throughcare_tlog::{keygen, Checkpoint, Error, SigningKey, VerifierKey};

// golang.org/x/mod/sumdb/note/note_test.go.
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn peter() -> (SigningKey, VerifierKey) {
    (
        SigningKey::parse(PETER_SKEY).unwrap(),
        VerifierKey::parse(PETER_VKEY).unwrap(),
    )
}

#[test]
fn go_note_keys_and_signature_are_reproduced_byte_for_byte() {
    let (skey, vkey) = peter();
    assert_eq!(skey.to_text(), PETER_SKEY);
    assert_eq!(skey.verifier(), vkey);
    assert_eq!(vkey.to_string(), PETER_VKEY);
    assert_eq!(vkey.name(), "PeterNeumann");
    assert_eq!(vkey.key_hash(), 0xc74f20a3);
    // keygen from the same seed writes Go's two key texts.
    let seed = BASE64.decode(&PETER_SKEY[34..]).unwrap()[1..]
        .try_into()
        .unwrap();
    assert_eq!(
        keygen("PeterNeumann", seed).unwrap(),
        (PETER_SKEY.to_string(), PETER_VKEY.to_string())
    );
    // Ed25519 is deterministic: our note is Go's note.
    assert_eq!(
        skey.sign_note(TEXT).unwrap(),
        format!("{TEXT}\n{PETER_SIG}")
    );
}

#[test]
fn go_notes_open_with_the_trusted_key_and_ignore_others() {
    let (_, peter) = peter();
    let enoch = VerifierKey::parse(ENOCH_VKEY).unwrap();
    let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    assert_eq!(peter.open_note(&both), Ok(TEXT));
    assert_eq!(enoch.open_note(&both), Ok(TEXT));
    // Repeated signatures are fine.
    let repeated = format!("{TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}");
    assert_eq!(peter.open_note(&repeated), Ok(TEXT));
    // Signed by someone else only.
    assert_eq!(
        peter.open_note(&format!("{TEXT}\n{ENOCH_SIG}")),
        Err(Error::NotSigned("PeterNeumann+c74f20a3".into()))
    );
    // A corrupted signature by the trusted key fails the whole note.
    let corrupt = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert_eq!(
        peter.open_note(&corrupt),
        Err(Error::BadSignature("PeterNeumann+c74f20a3".into()))
    );
    // A corrupted signature by an unknown key is ignored.
    let other = format!(
        "{TEXT}\n{PETER_SIG}{}ABCD{}",
        &ENOCH_SIG[..60],
        &ENOCH_SIG[60..]
    );
    assert_eq!(peter.open_note(&other), Ok(TEXT));
    // Same name, other hash (or the reverse): another key, ignored, so unsigned.
    let renamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego");
    assert!(matches!(
        peter.open_note(&format!("{TEXT}\n{renamed}")),
        Err(Error::NotSigned(_))
    ));
    let rehashed = PETER_SIG.replace("x08g", "xxxx");
    assert!(matches!(
        peter.open_note(&format!("{TEXT}\n{rehashed}")),
        Err(Error::NotSigned(_))
    ));
}

#[test]
fn malformed_notes_are_refused() {
    let (skey, peter) = peter();
    let bad = [
        TEXT.to_string(),
        format!("{TEXT}\n"),
        format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\x01{TEXT}\n{PETER_SIG}"),
        format!("{TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"),
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
        format!("{TEXT}\n{}", PETER_SIG.repeat(101)),
        format!("{TEXT}\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"),
        format!("{TEXT}\n— PeterNeumann x08g\n"),
        format!("{TEXT}\r\n{PETER_SIG}"),
    ];
    for note in bad {
        assert!(
            matches!(peter.open_note(&note), Err(Error::MalformedNote(_))),
            "accepted {note:?}"
        );
    }
    assert!(matches!(
        skey.sign_note("no newline"),
        Err(Error::MalformedNote(_))
    ));
    assert!(matches!(
        skey.sign_note("tab\there\n"),
        Err(Error::MalformedNote(_))
    ));
}

/// Go's TestNewVerifier / TestNewSigner: every proper substring and every one-byte
/// increment of a key text is refused.
#[test]
fn mangled_key_texts_are_refused() {
    for (key, parse) in [
        (
            PETER_VKEY,
            (|s: &str| VerifierKey::parse(s).is_ok()) as fn(&str) -> bool,
        ),
        (PETER_SKEY, |s: &str| SigningKey::parse(s).is_ok()),
    ] {
        assert!(parse(key));
        let b = key.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if (i, j) != (0, b.len()) {
                    let s = std::str::from_utf8(&b[i..j]).unwrap();
                    // Surrounding whitespace is trimmed, so no substring is the key again.
                    assert!(!parse(s), "accepted {s:?}");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] += 1;
            let s = String::from_utf8(m).unwrap();
            assert!(!parse(&s), "accepted {s:?}");
        }
    }
    // Go's two hand-made bad keys: wrong length and unknown algorithm, hashes adjusted.
    for bad in [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ] {
        assert!(matches!(VerifierKey::parse(bad), Err(Error::InvalidKey(_))));
    }
    assert!(matches!(
        keygen("two words", [7; 32]),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(keygen("a+b", [7; 32]), Err(Error::InvalidKey(_))));
    assert!(matches!(keygen("", [7; 32]), Err(Error::InvalidKey(_))));
    // A key file's trailing newline is fine.
    assert!(SigningKey::parse(&format!("{PETER_SKEY}\n")).is_ok());
    assert!(format!("{PETER_VKEY}\n")
        .trim()
        .parse::<VerifierKey>()
        .is_ok());
}

/// Two tree heads signed by the Go checksum database (sum.golang.org), with its published
/// verifier key: our note and checkpoint parsing opens a production Go checkpoint.
#[test]
fn sum_golang_org_checkpoints_open() {
    let key =
        VerifierKey::parse("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8")
            .unwrap();
    let notes = [
        (
            "go.sum database tree\n31700353\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n\n\
             — sum.golang.org Az3grnmrIUEDFqHzAElIQCPNoRFRAAdFo47fooyWKMHb89k11GJh5zHIfNCOBmwn/C3YI8oW9/C8DJ87F61QqspBYwM=\n",
            31700353,
            "qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=",
        ),
        (
            "go.sum database tree\n65209736\n5+uGFjx6xBZG8ip1+wi77v+grwbhhukIrxEUS8PXvRo=\n\n\
             — sum.golang.org Az3grnbssgK7ubgFX36gVETtNv0U23qxyAhAMai2QUfeGa3nB/akvkMdlUErfcZz7l/R3cVtYspg3dxXABkGZZKdsQ8=\n",
            65209736,
            "5+uGFjx6xBZG8ip1+wi77v+grwbhhukIrxEUS8PXvRo=",
        ),
    ];
    for (note, size, root) in notes {
        let checkpoint = key.open(note).unwrap();
        assert_eq!(checkpoint.origin, "go.sum database tree");
        assert_eq!(checkpoint.size, size);
        assert_eq!(BASE64.encode(checkpoint.root), root);
        let altered = note.replace(&size.to_string(), &(size + 1).to_string());
        assert!(matches!(key.open(&altered), Err(Error::BadSignature(_))));
    }
}

fn sample() -> Checkpoint {
    Checkpoint {
        origin: "throughcare.local/01J9Z3TESTLEDGER".into(),
        size: 1234,
        root: Sha256::digest(b"a root").into(),
    }
}

/// The checkpoint note rebuilt from the C2SP specs with `sha2` and `ed25519-dalek` alone.
#[test]
fn a_checkpoint_signed_by_hand_from_the_specs_is_byte_identical() {
    let name = "throughcare.local/audit";
    let seed = [42u8; 32];
    let (skey_text, vkey_text) = keygen(name, seed).unwrap();
    let checkpoint = sample();
    let note = SigningKey::parse(&skey_text)
        .unwrap()
        .sign(&checkpoint)
        .unwrap();

    let dalek = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = dalek.verifying_key().to_bytes();
    // key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]
    let mut id_input = name.as_bytes().to_vec();
    id_input.push(b'\n');
    id_input.push(0x01);
    id_input.extend_from_slice(&public);
    let key_id: [u8; 4] = Sha256::digest(&id_input)[..4].try_into().unwrap();
    let b64_root = BASE64.encode(checkpoint.root);
    let body = format!("throughcare.local/01J9Z3TESTLEDGER\n1234\n{b64_root}\n");
    let signature = dalek.sign(body.as_bytes()).to_bytes();
    let sig_b64 = BASE64.encode([&key_id[..], &signature[..]].concat());

    assert_eq!(checkpoint.body(), body);
    assert_eq!(note, format!("{body}\n\u{2014} {name} {sig_b64}\n"));
    let vkey_by_hand = format!(
        "{name}+{}+{}",
        hex::encode(key_id),
        BASE64.encode([&[0x01][..], &public[..]].concat())
    );
    assert_eq!(vkey_text, vkey_by_hand);
    assert_eq!(
        skey_text,
        format!(
            "PRIVATE+KEY+{name}+{}+{}",
            hex::encode(key_id),
            BASE64.encode([&[0x01][..], &seed[..]].concat())
        )
    );
    // And dalek verifies what we wrote.
    let raw = BASE64
        .decode(note.rsplit_once(' ').unwrap().1.trim_end())
        .unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&raw[4..]).unwrap();
    dalek
        .verifying_key()
        .verify_strict(body.as_bytes(), &sig)
        .unwrap();
}

#[test]
fn checkpoints_round_trip_and_tampering_is_caught() {
    let (skey, vkey) = keygen("throughcare.local/audit", [9; 32]).unwrap();
    let (skey, vkey) = (
        SigningKey::parse(&skey).unwrap(),
        VerifierKey::parse(&vkey).unwrap(),
    );
    let checkpoint = sample();
    let note = skey.sign(&checkpoint).unwrap();
    assert_eq!(vkey.open(&note), Ok(checkpoint.clone()));
    // A witness cosignature (another key) beside ours changes nothing.
    let witness = SigningKey::from_seed("witness.example/w1", [3; 32]).unwrap();
    let cosigned = format!(
        "{note}{}",
        witness
            .sign_note(&checkpoint.body())
            .unwrap()
            .split_once("\n\n")
            .unwrap()
            .1
    );
    assert_eq!(vkey.open(&cosigned), Ok(checkpoint.clone()));
    assert_eq!(witness.verifier().open(&cosigned), Ok(checkpoint.clone()));
    // Only the witness: not ours.
    let only_witness = witness.sign(&checkpoint).unwrap();
    assert!(matches!(vkey.open(&only_witness), Err(Error::NotSigned(_))));
    // A changed size or root.
    let grown = note.replacen("\n1234\n", "\n1235\n", 1);
    assert!(matches!(vkey.open(&grown), Err(Error::BadSignature(_))));
    let mut other = checkpoint.clone();
    other.root[0] ^= 1;
    let swapped_root = note.replace(&BASE64.encode(checkpoint.root), &BASE64.encode(other.root));
    assert!(matches!(
        vkey.open(&swapped_root),
        Err(Error::BadSignature(_))
    ));
    // The empty tree.
    let empty = Checkpoint {
        origin: "o".into(),
        size: 0,
        root: throughcare_tlog::empty_root(),
    };
    assert_eq!(vkey.open(&skey.sign(&empty).unwrap()), Ok(empty));
    // Origins that are not one line are refused at signing.
    for origin in ["", "two\nlines", "tab\tin"] {
        let bad = Checkpoint {
            origin: origin.into(),
            ..checkpoint.clone()
        };
        assert!(
            matches!(skey.sign(&bad), Err(Error::MalformedNote(_))),
            "{origin:?}"
        );
    }
}

#[test]
fn checkpoint_bodies_are_parsed_strictly() {
    let root = BASE64.encode([7u8; 32]);
    let ok = |body: String, size: u64| {
        let c = Checkpoint::parse(&body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
        assert_eq!((c.size, c.root), (size, [7u8; 32]));
        // Signed and opened, the same body comes back.
        let key = SigningKey::from_seed("k", [1; 32]).unwrap();
        assert_eq!(key.verifier().open(&key.sign_note(&body).unwrap()), Ok(c));
    };
    ok(format!("example.com/log\n0\n{root}\n"), 0);
    ok(
        format!("example.com/log\n18446744073709551615\n{root}\n"),
        u64::MAX,
    );
    ok(format!("with spaces + plus\n10\n{root}\n"), 10);
    let short_root = BASE64.encode([7u8; 31]);
    let bad = [
        format!("example.com/log\n1\n{root}"),
        format!("example.com/log\n1\n{root}\nextension\n"),
        format!("example.com/log\n1\n{root}\n\n"),
        "example.com/log\n1\n".to_string(),
        format!("\n1\n{root}\n"),
        format!("example.com/log\n01\n{root}\n"),
        format!("example.com/log\n+1\n{root}\n"),
        format!("example.com/log\n-1\n{root}\n"),
        format!("example.com/log\n1 \n{root}\n"),
        format!("example.com/log\n\n{root}\n"),
        format!("example.com/log\n18446744073709551616\n{root}\n"),
        format!("example.com/log\n1\n{short_root}\n"),
        format!("example.com/log\n1\n{}\n", root.trim_end_matches('=')),
        format!("example.com/log\n1\n{}\n", hex::encode([7u8; 32])),
    ];
    let key = SigningKey::from_seed("k", [1; 32]).unwrap();
    for body in bad {
        assert!(
            matches!(Checkpoint::parse(&body), Err(Error::MalformedNote(_))),
            "{body:?}"
        );
        // Even correctly signed, such a text is not a checkpoint.
        if let Ok(note) = key.sign_note(&body) {
            assert!(
                matches!(key.verifier().open(&note), Err(Error::MalformedNote(_))),
                "{body:?}"
            );
        }
    }
}

#[test]
fn the_signing_key_does_not_show_its_secret() {
    let (skey, _) = peter();
    let debug = format!("{skey:?}");
    assert!(
        debug.contains("PeterNeumann") && !debug.contains("AYEKFALV"),
        "{debug}"
    );
}
