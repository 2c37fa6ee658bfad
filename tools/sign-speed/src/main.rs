//! Two measures of what signing allows on this machine, for `make bench`:
//!
//! - `sign-speed SECONDS THREADS`: RS256 (RSA-2048), ES256 and EdDSA signatures per second
//!   with aws-lc, the library auth-host signs tokens with, every thread signing at once.
//!   Prints `rs256 es256 eddsa` on one line. (OpenSSL signs RSA faster than aws-lc on some
//!   CPUs, so this bound and `openssl speed`'s differ.)
//! - `sign-speed serve PORT ALGORITHM`: an HTTP server that does nothing but sign, once per
//!   request, with the same stack as auth-host (tokio's multi-thread runtime, hyper's
//!   HTTP/1, aws-lc, signing on the thread that serves the request). Driven by wrk beside
//!   it, it is the most any server signing per request reaches here: the signing bound less
//!   what HTTP and the load generator take of the same cores.

mod serve;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256,
};

/// A token-sized message: a permission token's header and claims are about this long.
const MESSAGE: &[u8] = &[b'x'; 300];

const USAGE: &str = "usage: sign-speed SECONDS THREADS | sign-speed serve PORT RS256|ES256|EdDSA";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [serve, port, algorithm] if serve == "serve" => match port.parse::<u16>() {
            Ok(port) => SigningKey::generate(algorithm).and_then(|key| serve::serve(port, key)),
            Err(_) => return usage(),
        },
        [seconds, threads] => match (seconds.parse::<f64>(), threads.parse::<usize>()) {
            (Ok(seconds), Ok(threads)) if seconds.is_finite() && seconds > 0.0 => {
                measure(Duration::from_secs_f64(seconds), threads.max(1))
                    .map(|[rsa, ecdsa, eddsa]| println!("{rsa:.0} {ecdsa:.0} {eddsa:.0}"))
            }
            _ => return usage(),
        },
        _ => return usage(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sign-speed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn failed(what: &str) -> String {
    format!("{what} failed")
}

/// A key made for the run, of one of the permission-token algorithms.
enum SigningKey {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl SigningKey {
    fn generate(algorithm: &str) -> Result<SigningKey, String> {
        let rng = SystemRandom::new();
        Ok(match algorithm {
            "RS256" => SigningKey::Rs256(
                RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| failed("RSA key generation"))?,
            ),
            "ES256" => {
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| failed("ECDSA key generation"))?;
                SigningKey::Es256(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                        .map_err(|_| failed("ECDSA key"))?,
                )
            }
            "EdDSA" => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| failed("Ed25519 key generation"))?;
                SigningKey::EdDsa(
                    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                        .map_err(|_| failed("Ed25519 key"))?,
                )
            }
            other => return Err(format!("unknown algorithm `{other}`; {USAGE}")),
        })
    }

    /// One signature of `message`, allocated as auth-host's signer allocates it.
    fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Result<Vec<u8>, String> {
        Ok(match self {
            SigningKey::Rs256(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, rng, message, &mut signature)
                    .map_err(|_| failed("RSA signing"))?;
                signature
            }
            SigningKey::Es256(key) => key
                .sign(rng, message)
                .map_err(|_| failed("ECDSA signing"))?
                .as_ref()
                .to_vec(),
            SigningKey::EdDsa(key) => key.sign(message).as_ref().to_vec(),
        })
    }
}

fn measure(time: Duration, threads: usize) -> Result<[f64; 3], String> {
    let rng = SystemRandom::new();
    let mut rates = [0.0; 3];
    for (rate, algorithm) in rates.iter_mut().zip(["RS256", "ES256", "EdDSA"]) {
        let key = SigningKey::generate(algorithm)?;
        *rate = per_second(time, threads, || {
            key.sign(&rng, MESSAGE).map(|signature| {
                std::hint::black_box(signature);
            })
        })?;
    }
    Ok(rates)
}

/// Calls of `sign` per second, `threads` threads calling it for `time`.
fn per_second<F>(time: Duration, threads: usize, sign: F) -> Result<f64, String>
where
    F: Fn() -> Result<(), String> + Sync,
{
    let started = Instant::now();
    let counts = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<u64, String> {
                    let mut count = 0;
                    while started.elapsed() < time {
                        sign()?;
                        count += 1;
                    }
                    Ok(count)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .map_err(|_| "a signing thread panicked".to_owned())?
            })
            .collect::<Result<Vec<u64>, String>>()
    })?;
    Ok(counts.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64())
}
