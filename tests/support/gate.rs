//! A TCP gate in front of a service: open, it forwards every connection; closed, it cuts
//! the connections it carries and drops new ones at once, as a network partition or a
//! crashed pod would. A call cut mid-flight may still have been applied by the service:
//! exactly the lost answer an orchestrator must survive.

use std::net::SocketAddr;

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub struct Gate {
    addr: SocketAddr,
    open: watch::Sender<bool>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Gate {
    /// A gate on 127.0.0.1:0 forwarding to `target` (`http://host:port`), open.
    pub async fn new(target: &str) -> Gate {
        let target: SocketAddr = target
            .trim_start_matches("http://")
            .parse()
            .expect("a host:port target");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, watching) = watch::channel(true);
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if !*watching.borrow() {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(forward(inbound, target, watching.clone()));
            }
        });
        Gate {
            addr,
            open,
            accepting,
        }
    }

    /// `http://127.0.0.1:port`, for clients that should go through the gate.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every connection through the gate and refuses new ones until [`Self::open`].
    pub fn close(&self) {
        self.open.send_replace(false);
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn forward(mut inbound: TcpStream, target: SocketAddr, mut open: watch::Receiver<bool>) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = open.wait_for(|open| !*open) => {}
    }
}
