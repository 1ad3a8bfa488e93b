//! The store and the ports the workers use: node 0 hosts the rendezvous store, every node
//! reaches it as a client, and the workers get a `MASTER_PORT` of their own.

use vigil_collective::store::BackgroundStore;

use super::AgentSpec;
use crate::supervise::error::LaunchError;

/// `MASTER_PORT` for the workers: never the store's port (a torch script's rank 0 binds
/// it). One node: a free port of this machine. Several: the store's port + 1 on node 0's
/// host, so every node agrees without a round trip (keep it free there, as torchrun's
/// users keep 29500 free).
pub(super) fn torch_port(nnodes: u32, store_port: u16) -> Result<u16, LaunchError> {
    if nnodes > 1 {
        return Ok(store_port.checked_add(1).unwrap_or(store_port - 1));
    }
    let bind = "0.0.0.0:0";
    let bad = |e| LaunchError::Bind {
        addr: bind.into(),
        source: vigil_collective::Error::io("pick a free MASTER_PORT", e),
    };
    let listener = std::net::TcpListener::bind(bind).map_err(bad)?;
    Ok(listener.local_addr().map_err(bad)?.port())
}

/// Binds the store on node 0. Returns it with the address workers use.
pub(super) fn host_store(
    spec: &AgentSpec,
    token: &str,
) -> Result<(Option<BackgroundStore>, String, u16), LaunchError> {
    match (&spec.endpoint, spec.node_rank) {
        (None, _) => {
            let bind = "127.0.0.1:0";
            let store = BackgroundStore::start(bind.parse().expect("literal"), token).map_err(
                |source| LaunchError::Bind {
                    addr: bind.into(),
                    source,
                },
            )?;
            let port = store.addr().port();
            Ok((Some(store), "127.0.0.1".into(), port))
        }
        (Some((host, port)), 0) => {
            // All interfaces of the endpoint's address family.
            let any = if host.contains(':') { "::" } else { "0.0.0.0" };
            let bind = host_port(any, *port);
            let store = BackgroundStore::start(bind.parse().expect("valid"), token)
                .map_err(|source| LaunchError::Bind { addr: bind, source })?;
            let port = store.addr().port();
            Ok((Some(store), host.clone(), port))
        }
        (Some((host, port)), _) => Ok((None, host.clone(), *port)),
    }
}

/// `HOST:PORT`, bracketing IPv6 literals.
pub(super) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Node 0 talks to its own store over loopback (its public name may not resolve locally).
pub(super) fn connect_addr(endpoint: &str, store: Option<&BackgroundStore>) -> String {
    match store {
        Some(s) => format!("127.0.0.1:{}", s.addr().port()),
        None => endpoint.to_string(),
    }
}
