//! D-Bus call latency for bench/run.sh (an example target, not installed):
//!
//!     dbus_latency ADDRESS CLIENTS CALLS DESTINATION PATH INTERFACE METHOD
//!
//! CLIENTS threads, each with its own bus connection and runtime, make one
//! untimed call, wait for each other, then make CALLS calls back to back (no
//! arguments). Prints the latency of every timed call in ms, one per line.

use std::sync::{Arc, Barrier};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, clients, calls, dest, path, iface, method] = args.as_slice() else {
        eprintln!("usage: dbus_latency ADDRESS CLIENTS CALLS DESTINATION PATH INTERFACE METHOD");
        std::process::exit(2);
    };
    let clients: usize = clients.parse().expect("CLIENTS is a number");
    let calls: usize = calls.parse().expect("CALLS is a number");
    let barrier = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let barrier = barrier.clone();
            let (address, dest, path, iface, method) = (
                address.clone(),
                dest.clone(),
                path.clone(),
                iface.clone(),
                method.clone(),
            );
            std::thread::spawn(move || -> Vec<f64> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let conn = zbus::connection::Builder::address(address.as_str())
                        .build()
                        .await
                        .expect("connecting to the bus");
                    let call = || {
                        conn.call_method(
                            Some(dest.as_str()),
                            path.as_str(),
                            Some(iface.as_str()),
                            method.as_str(),
                            &(),
                        )
                    };
                    call().await.expect("first call");
                    barrier.wait();
                    let mut out = Vec::with_capacity(calls);
                    for _ in 0..calls {
                        let t = Instant::now();
                        call().await.expect("call");
                        out.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    out
                })
            })
        })
        .collect();
    let mut text = String::new();
    for t in threads {
        for ms in t.join().expect("client thread") {
            text.push_str(&format!("{ms:.4}\n"));
        }
    }
    print!("{text}");
}
