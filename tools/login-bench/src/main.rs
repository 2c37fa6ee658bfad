//! `login-bench BASE CONNECTIONS SECONDS`: as many development logins as it can, each a
//! separate browser (cookie jar): `GET /auth/login/dev` (auth-host stores the state) then
//! `POST /auth/login/dev` (the callback: state and cookie checked, user refreshed, hooks
//! run, client token signed). Prints one line: `logins/s p50_ms p99_ms logins errors`.

use std::time::{Duration, Instant};

async fn one_login(base: &str, email: &str) -> Result<(), String> {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let started = browser
        .get(format!("{base}/auth/login/dev?next={base}/auth/check"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let location = started
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or("no redirect from the login start")?;
    let state = location
        .split("state=")
        .nth(1)
        .ok_or("no state in the redirect")?
        .to_owned();
    let finished = browser
        .post(format!("{base}/auth/login/dev"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("state={state}&email={email}&name=Bench"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let landed = finished
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if landed.contains("jwt=") {
        Ok(())
    } else {
        Err(format!("login did not end with a token: {landed}"))
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(connections), Some(seconds)) = (
        args.get(1).cloned(),
        args.get(2).and_then(|c| c.parse::<usize>().ok()),
        args.get(3).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: login-bench BASE CONNECTIONS SECONDS");
        std::process::exit(2);
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let began = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let base = base.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    // Returning users: the 20 the bench created, so the table does not grow.
                    let email = format!("user{}@bench.example", 1 + (worker as u64 + n) % 20);
                    n += 1;
                    let start = Instant::now();
                    match one_login(&base, &email).await {
                        Ok(()) => latencies.push(start.elapsed()),
                        Err(error) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("login-bench: {error}");
                            }
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        if let Ok((mut own, own_errors)) = worker.await {
            latencies.append(&mut own);
            errors += own_errors;
        }
    }
    let elapsed = began.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1000.0
    };
    println!(
        "{:.0} {:.2} {:.2} {} {}",
        latencies.len() as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
        latencies.len(),
        errors
    );
}
