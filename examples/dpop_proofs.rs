//! DPoP proofs (RFC 9449, SPEC 14) made up front for `bench/run.sh`: wrk's Lua cannot sign,
//! so the DPoP case reads one new proof per request from a file this writes.
//!
//!     cargo run --release --example dpop_proofs -- --key K.pem login --htu URL
//!     cargo run --release --example dpop_proofs -- --key K.pem proofs --htu URL \
//!         --method GET --token ACCESS_TOKEN --count N --out FILE
//!
//! `--key`: an ES256 (P-256) private key, PKCS#8 PEM; made and written there if the file does
//! not exist. `login` prints one proof for `POST htu` (no `ath`); `proofs` writes `count`
//! proofs, one per line, each with its own `jti`, `iat` now and `ath` of the token.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// ES256 private key, PKCS#8 PEM ("PRIVATE KEY"); created if missing
    #[arg(long)]
    key: PathBuf,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Print one proof for `POST <htu>` (a DPoP login or refresh)
    Login {
        #[arg(long)]
        htu: String,
    },
    /// Write `count` proofs for `<method> <htu>` with the access token's `ath`, one per line
    Proofs {
        #[arg(long)]
        htu: String,
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        count: u64,
        /// Output file; standard output if absent
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Signs proofs with one key; the header (with the public jwk) is the same for all of them.
struct Prover {
    key: EcdsaKeyPair,
    header: String,
    rng: SystemRandom,
    /// Random per run, so that two runs with one key never share a `jti`.
    jti_prefix: String,
}

impl Prover {
    fn new(pkcs8: &[u8]) -> Prover {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .expect("the key file holds a P-256 PKCS#8 private key");
        let point = key.public_key().as_ref();
        let jwk = json!({ "kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]) });
        let header = B64.encode(json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk }).to_string());
        let rng = SystemRandom::new();
        let mut prefix = [0u8; 12];
        rng.fill(&mut prefix).expect("random bytes");
        Prover {
            key,
            header,
            rng,
            jti_prefix: B64.encode(prefix),
        }
    }

    /// Proof number `n` of this run for `method htu` at `iat`, bound to `ath` if given.
    fn proof(&self, n: u64, method: &str, htu: &str, iat: u64, ath: Option<&str>) -> String {
        let mut claims =
            json!({ "jti": format!("{}-{n}", self.jti_prefix), "htm": method, "htu": htu, "iat": iat });
        if let Some(ath) = ath {
            claims["ath"] = json!(ath);
        }
        let input = format!("{}.{}", self.header, B64.encode(claims.to_string()));
        let signature = self.key.sign(&self.rng, input.as_bytes()).expect("sign");
        format!("{input}.{}", B64.encode(signature.as_ref()))
    }
}

/// base64url(SHA-256(token)), the `ath` claim.
fn ath(token: &str) -> String {
    B64.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// The PKCS#8 bytes in `path`, or a new key written there.
fn load_or_make_key(path: &Path) -> Vec<u8> {
    if let Ok(text) = fs::read(path) {
        let pem = pem::parse(&text).expect("the key file is PEM");
        assert_eq!(
            pem.tag(),
            "PRIVATE KEY",
            "the key file is not a PKCS#8 private key"
        );
        return pem.into_contents();
    }
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .expect("new key");
    let text = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
    fs::write(path, text).expect("write the key file");
    pkcs8.as_ref().to_vec()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn main() {
    let args = Args::parse();
    let prover = Prover::new(&load_or_make_key(&args.key));
    match args.what {
        What::Login { htu } => println!("{}", prover.proof(0, "POST", &htu, now(), None)),
        What::Proofs {
            htu,
            method,
            token,
            count,
            out,
        } => {
            let sink: Box<dyn Write> = match out {
                Some(path) => Box::new(fs::File::create(path).expect("create the output file")),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut sink = BufWriter::with_capacity(1 << 20, sink);
            let (ath, iat) = (ath(&token), now());
            for n in 0..count {
                writeln!(sink, "{}", prover.proof(n, &method, &htu, iat, Some(&ath))).expect("write");
            }
            sink.flush().expect("write");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use portcullis::auth::dpop::{DpopError, DpopVerifier, Expected};

    use super::*;

    const HTU: &str = "https://127.0.0.1:18443/api/bench";
    const TOKEN: &str = "header.claims.signature";

    /// The proofs are what the gateway's verifier accepts, once each, and the key file
    /// round-trips: a second run with the same file signs with the same key.
    #[test]
    fn proofs_verify_once_each_with_the_key_from_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dpop.pem");
        let (made, loaded) = (load_or_make_key(&path), load_or_make_key(&path));
        assert_eq!(made, loaded);
        let (first, second) = (Prover::new(&made), Prover::new(&loaded));
        let verifier = DpopVerifier::new(
            Duration::from_secs(60),
            Duration::from_secs(5),
            Default::default(),
        );
        let now = now();
        let expected = |method, access_token, jkt| Expected {
            method,
            uri: HTU,
            access_token,
            jkt,
            now,
        };
        let login = verifier
            .verify(
                &first.proof(0, "POST", HTU, now, None),
                &expected("POST", None, None),
            )
            .expect("the login proof verifies");
        let proofs: Vec<String> = (1..4)
            .map(|n| first.proof(n, "GET", HTU, now, Some(&ath(TOKEN))))
            .chain([second.proof(0, "GET", HTU, now, Some(&ath(TOKEN)))])
            .collect();
        for proof in &proofs {
            let jkt = verifier.verify(proof, &expected("GET", Some(TOKEN), Some(&login)));
            assert_eq!(jkt.as_ref(), Ok(&login), "same key, new jti: accepted");
        }
        assert_eq!(
            verifier.verify(&proofs[1], &expected("GET", Some(TOKEN), Some(&login))),
            Err(DpopError::Replayed)
        );
        assert_eq!(
            verifier.verify(
                &proofs[2],
                &expected("GET", Some("another.token.x"), Some(&login))
            ),
            Err(DpopError::WrongAccessToken)
        );
    }
}
