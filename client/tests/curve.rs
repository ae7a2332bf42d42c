//! CURVE end to end on raw ZeroMQ sockets: the libzmq this workspace builds (with the static
//! libsodium from vendor/zmq-sys) encrypts and authenticates, and refuses a client that has
//! the wrong server key.

use std::time::{Duration, Instant};

/// Every wait in these tests ends by then; a CURVE handshake on loopback takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(10);

/// How long the client with the wrong server key waits for a reply that must never come.
const REFUSED_WAIT: Duration = Duration::from_millis(100);

fn keypair() -> zmq::CurveKeyPair {
    zmq::CurveKeyPair::new().expect("CURVE key generation")
}

/// A REP socket that is a CURVE server with `server`'s secret key, on a random loopback port.
fn curve_server(ctx: &zmq::Context, server: &zmq::CurveKeyPair) -> (zmq::Socket, String) {
    let rep = ctx.socket(zmq::REP).unwrap();
    rep.set_linger(0).unwrap();
    rep.set_curve_server(true).unwrap();
    rep.set_curve_secretkey(&server.secret_key).unwrap();
    rep.set_rcvtimeo(DEADLINE.as_millis() as i32).unwrap();
    rep.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = rep.get_last_endpoint().unwrap().unwrap();
    (rep, endpoint)
}

/// A REQ socket that is a CURVE client of the server whose public key is `server_public`.
fn curve_client(
    ctx: &zmq::Context,
    server_public: &[u8],
    endpoint: &str,
    wait: Duration,
) -> zmq::Socket {
    let own = keypair();
    let req = ctx.socket(zmq::REQ).unwrap();
    req.set_linger(0).unwrap();
    req.set_curve_serverkey(server_public).unwrap();
    req.set_curve_publickey(&own.public_key).unwrap();
    req.set_curve_secretkey(&own.secret_key).unwrap();
    req.set_rcvtimeo(wait.as_millis() as i32).unwrap();
    req.connect(endpoint).unwrap();
    req
}

#[test]
fn libzmq_is_built_with_curve() {
    assert_eq!(zmq::has("curve"), Some(true));
}

#[test]
fn curve_round_trip() {
    let started = Instant::now();
    let ctx = zmq::Context::new();
    let server = keypair();
    let (rep, endpoint) = curve_server(&ctx, &server);
    let req = curve_client(&ctx, &server.public_key, &endpoint, DEADLINE);

    req.send("ping", 0).unwrap();
    assert_eq!(rep.recv_bytes(0).unwrap(), b"ping");
    rep.send("pong", 0).unwrap();
    assert_eq!(req.recv_bytes(0).unwrap(), b"pong");
    assert_eq!(rep.get_mechanism().unwrap(), zmq::Mechanism::ZMQ_CURVE);
    assert_eq!(req.get_mechanism().unwrap(), zmq::Mechanism::ZMQ_CURVE);
    assert!(started.elapsed() < DEADLINE);
}

#[test]
fn wrong_server_key_is_refused() {
    let started = Instant::now();
    let ctx = zmq::Context::new();
    let server = keypair();
    let (rep, endpoint) = curve_server(&ctx, &server);

    // The server reports each handshake on its monitor socket.
    let monitor = format!("inproc://curve-monitor-{}", std::process::id());
    rep.monitor(&monitor, zmq::SocketEvent::ALL as i32).unwrap();
    let events = ctx.socket(zmq::PAIR).unwrap();
    events.set_rcvtimeo(DEADLINE.as_millis() as i32).unwrap();
    events.connect(&monitor).unwrap();

    let impostor = keypair();
    let req = curve_client(&ctx, &impostor.public_key, &endpoint, REFUSED_WAIT);
    req.send("ping", 0).unwrap();

    // The server cannot open the client's HELLO, sealed for another key: the handshake fails.
    let failure = loop {
        let frames = events
            .recv_multipart(0)
            .expect("a handshake event before the deadline");
        // First frame: the event as a little-endian u16, then a u32 value.
        let head = frames
            .first()
            .filter(|f| f.len() >= 2)
            .expect("an event frame");
        let event = zmq::SocketEvent::from_raw(u16::from_le_bytes([head[0], head[1]]));
        match event {
            zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL
            | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH
            | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL => break event,
            zmq::SocketEvent::HANDSHAKE_SUCCEEDED => panic!("handshake with the wrong key"),
            _ => {}
        }
    };
    assert_ne!(failure, zmq::SocketEvent::HANDSHAKE_SUCCEEDED);

    // Nothing reached the server, and the client never gets a reply.
    rep.set_rcvtimeo(0).unwrap();
    assert_eq!(rep.recv_bytes(0), Err(zmq::Error::EAGAIN));
    assert_eq!(req.recv_bytes(0), Err(zmq::Error::EAGAIN));
    assert!(started.elapsed() < DEADLINE);
}
