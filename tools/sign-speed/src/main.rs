//! `sign-speed SECONDS THREADS`: RS256 (RSA-2048), ES256 and EdDSA signatures per second
//! with aws-lc, the library auth-host signs tokens with, every thread signing at once.
//! Prints `rs256 es256 eddsa` on one line; `make bench` sets the server's rows against it
//! beside `openssl speed`'s figures (OpenSSL signs RSA faster than aws-lc on some CPUs, so
//! the two bounds differ).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256,
};

/// A token-sized message: a permission token's header and claims are about this long.
const MESSAGE: &[u8] = &[b'x'; 300];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(seconds), Some(threads)) = (
        args.first().and_then(|s| s.parse::<f64>().ok()),
        args.get(1).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: sign-speed SECONDS THREADS");
        return ExitCode::from(2);
    };
    match measure(Duration::from_secs_f64(seconds), threads.max(1)) {
        Ok([rsa, ecdsa, eddsa]) => {
            println!("{rsa:.0} {ecdsa:.0} {eddsa:.0}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sign-speed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn measure(time: Duration, threads: usize) -> Result<[f64; 3], String> {
    let failed = |what: &str| format!("{what} failed");
    let rng = SystemRandom::new();
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| failed("RSA key generation"))?;
    let ecdsa_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| failed("ECDSA key generation"))?;
    let ecdsa = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ecdsa_pkcs8.as_ref())
        .map_err(|_| failed("ECDSA key"))?;
    let ed_pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| failed("Ed25519 key generation"))?;
    let eddsa = Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).map_err(|_| failed("Ed25519 key"))?;

    let rsa_rate = per_second(time, threads, || {
        let mut signature = vec![0; rsa.public_modulus_len()];
        rsa.sign(&RSA_PKCS1_SHA256, &rng, MESSAGE, &mut signature)
            .map_err(|_| failed("RSA signing"))
    })?;
    let ecdsa_rate = per_second(time, threads, || {
        ecdsa
            .sign(&rng, MESSAGE)
            .map(|signature| {
                std::hint::black_box(signature);
            })
            .map_err(|_| failed("ECDSA signing"))
    })?;
    let eddsa_rate = per_second(time, threads, || {
        std::hint::black_box(eddsa.sign(MESSAGE));
        Ok(())
    })?;
    Ok([rsa_rate, ecdsa_rate, eddsa_rate])
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
