//! Raw sockets' handshakes with the broker's endpoints, as their monitors report them: what
//! the login tests assert on.

use zhub_client::CurveKeyPair;

/// How a raw socket logs in.
#[derive(Clone, Copy)]
pub enum Login<'a> {
    /// No login (ZeroMQ's NULL mechanism).
    None,
    /// PLAIN: user and password.
    Plain(&'a str, &'a str),
    /// Server public key, client key pair.
    Curve(&'a str, &'a CurveKeyPair),
}

/// What the handshake of a raw socket of `kind` with `endpoint` ends in, as its monitor
/// reports it: success, the failure's kind, or the connection closed during the handshake
/// (what a client sees when the server cannot read its HELLO: a wrong server key).
pub fn handshake(endpoint: &str, kind: zmq::SocketType, login: Login<'_>) -> zmq::SocketEvent {
    let context = zmq::Context::new();
    let socket = context.socket(kind).unwrap();
    socket.set_linger(0).unwrap();
    match login {
        Login::None => {}
        Login::Plain(user, password) => {
            socket.set_plain_username(Some(user)).unwrap();
            socket.set_plain_password(Some(password)).unwrap();
        }
        Login::Curve(server, keys) => {
            socket.set_curve_serverkey(server.as_bytes()).unwrap();
            socket
                .set_curve_publickey(keys.public().as_bytes())
                .unwrap();
            socket
                .set_curve_secretkey(keys.secret().as_bytes())
                .unwrap();
        }
    }
    let monitor = format!("inproc://monitor-{}", zhub_protocol::ids::random_u64());
    let events = zmq::SocketEvent::HANDSHAKE_SUCCEEDED as i32
        | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as i32
        | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32
        | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32
        | zmq::SocketEvent::DISCONNECTED as i32;
    socket.monitor(&monitor, events).unwrap();
    let events = context.socket(zmq::PAIR).unwrap();
    events.set_linger(0).unwrap();
    events.set_rcvtimeo(10_000).unwrap();
    events.connect(&monitor).unwrap();
    socket.connect(endpoint).unwrap();
    let event = events.recv_bytes(0).expect("a handshake event");
    let _endpoint = events.recv_bytes(0).unwrap();
    zmq::SocketEvent::from_raw(u16::from_le_bytes([event[0], event[1]]))
}
