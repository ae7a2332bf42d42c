//! Codec tests, malformed input included: every bad frame is a clear error, never a panic.

use std::time::Duration;

use zhub_protocol::{
    body, bus, request, BusHeader, Encoding, ProtocolError, Reply, Request, Status,
};

fn header() -> BusHeader {
    BusHeader {
        publisher: 0x0102_0304_0506_0708,
        seq: 42,
        timestamp_us: 1_700_000_000_000_000,
        lamport: 7,
        encoding: Encoding::MsgPack,
    }
}

#[test]
fn bus_round_trip() {
    let frame = bus::encode("sensors.temp", &header(), b"body bytes");
    assert!(
        frame.starts_with(b"sensors.temp\0"),
        "topic first, for prefix matching"
    );
    let decoded = bus::decode(&frame).unwrap();
    assert_eq!(decoded.topic, "sensors.temp");
    assert_eq!(decoded.header, header());
    assert_eq!(decoded.body, b"body bytes");
    assert_eq!(bus::topic_of(&frame).unwrap(), "sensors.temp");
}

#[test]
fn bus_layout_is_as_documented() {
    let frame = bus::encode("t", &header(), b"");
    assert_eq!(frame.len(), 2 + bus::HEADER_LEN);
    assert_eq!(&frame[..4], &[b't', 0, bus::HEADER_VERSION, 1]);
    assert_eq!(&frame[4..12], &0x0102_0304_0506_0708u64.to_be_bytes());
    assert_eq!(&frame[12..20], &42u64.to_be_bytes());
    assert_eq!(&frame[28..36], &7u64.to_be_bytes());
}

#[test]
fn bus_empty_body_and_raw_encoding() {
    let mut h = header();
    h.encoding = Encoding::Raw;
    let frame = bus::encode("a", &h, b"");
    let decoded = bus::decode(&frame).unwrap();
    assert_eq!(decoded.header.encoding, Encoding::Raw);
    assert!(decoded.body.is_empty());
}

#[test]
fn bus_malformed_frames_are_errors() {
    assert_eq!(bus::decode(b""), Err(ProtocolError::MissingTopicEnd));
    assert_eq!(
        bus::decode(b"no terminator"),
        Err(ProtocolError::MissingTopicEnd)
    );
    assert!(matches!(
        bus::decode(b"\0rest"),
        Err(ProtocolError::InvalidName {
            reason: "empty",
            ..
        })
    ));
    assert!(matches!(
        bus::decode(b"\xff\xfe\0"),
        Err(ProtocolError::InvalidName {
            reason: "not UTF-8",
            ..
        })
    ));
    assert_eq!(
        bus::decode(b"t\0\x01\x01short"),
        Err(ProtocolError::TruncatedHeader {
            expected: bus::HEADER_LEN,
            got: 7
        })
    );
    let mut frame = bus::encode("t", &header(), b"x");
    frame[2] = 9;
    assert_eq!(
        bus::decode(&frame),
        Err(ProtocolError::UnsupportedVersion(9))
    );
    let mut frame = bus::encode("t", &header(), b"x");
    frame[3] = 77;
    assert_eq!(bus::decode(&frame), Err(ProtocolError::UnknownEncoding(77)));
    // A terminator beyond the longest topic is not searched for.
    let mut long = vec![b'a'; bus::MAX_TOPIC_LEN + 1];
    long.push(0);
    assert_eq!(bus::topic_of(&long), Err(ProtocolError::MissingTopicEnd));
}

#[test]
fn bus_every_truncation_is_an_error_not_a_panic() {
    let frame = bus::encode("topic", &header(), b"payload");
    for cut in 0..frame.len() - b"payload".len() {
        assert!(bus::decode(&frame[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn topic_rules() {
    assert!(bus::check_topic("a.b.c").is_ok());
    assert!(bus::check_topic("").is_err());
    assert!(bus::check_topic("a\0b").is_err());
    assert!(bus::check_topic(&"x".repeat(bus::MAX_TOPIC_LEN + 1)).is_err());
    assert!(bus::is_reserved("$zhub.probe.1"));
    assert!(!bus::is_reserved("zhub"));
}

#[test]
fn request_round_trip() {
    let req = Request {
        id: u64::MAX - 1,
        service: "print".into(),
        timeout: Duration::from_millis(2500),
        body: vec![b"one".to_vec(), Vec::new()],
    };
    let frames = req.encode();
    assert_eq!(frames[0], b"ZHC01");
    assert_eq!(Request::decode(&frames).unwrap(), req);
}

#[test]
fn reply_round_trip_and_status_codes() {
    for status in [
        Status::Ok,
        Status::BadRequest,
        Status::NoService,
        Status::Rejected,
        Status::Internal,
        Status::WorkerFailed,
        Status::Busy,
        Status::TimedOut,
    ] {
        assert_eq!(Status::from_code(status.code()).unwrap(), status);
        let reply = Reply::error(9, status, "why");
        assert_eq!(Reply::decode(&reply.encode()).unwrap(), reply);
        assert_eq!(Reply::decode_owned(reply.encode()).unwrap(), reply);
    }
    // Taking the frames reads what borrowing them reads, and refuses what it refuses.
    let reply = Reply::ok(3, vec![b"one".to_vec(), Vec::new(), b"three".to_vec()]);
    assert_eq!(Reply::decode_owned(reply.encode()).unwrap(), reply);
    let frames = reply.encode();
    for end in 0..4 {
        assert_eq!(
            Reply::decode_owned(frames[..end].to_vec()),
            Reply::decode(&frames[..end])
        );
        assert!(Reply::decode(&frames[..end]).is_err());
    }
    assert_eq!(Reply::error(1, Status::Busy, "full").reason(), "full");
    assert_eq!(
        Status::from_code(299),
        Err(ProtocolError::UnknownStatus(299))
    );
}

#[test]
fn request_malformed_frames_are_errors() {
    let good = Request {
        id: 1,
        service: "svc".into(),
        timeout: Duration::from_secs(1),
        body: vec![],
    }
    .encode();
    // Too few frames, at every length.
    for n in 0..5 {
        assert!(matches!(
            Request::decode(&good[..n]),
            Err(ProtocolError::FrameCount { .. })
        ));
    }
    let with = |i: usize, v: &[u8]| {
        let mut f = good.clone();
        f[i] = v.to_vec();
        Request::decode(&f)
    };
    assert!(matches!(
        with(0, b"MDPC01"),
        Err(ProtocolError::UnknownProtocol(_))
    ));
    assert_eq!(with(1, &[0x7f]), Err(ProtocolError::UnknownCommand(0x7f)));
    assert!(matches!(with(1, b""), Err(ProtocolError::FieldSize { .. })));
    assert!(matches!(
        with(2, b"1234567"),
        Err(ProtocolError::FieldSize {
            field: "request id",
            ..
        })
    ));
    assert!(matches!(
        with(3, b""),
        Err(ProtocolError::InvalidName { .. })
    ));
    assert!(matches!(
        with(3, b"\xff"),
        Err(ProtocolError::InvalidName { .. })
    ));
    assert!(matches!(
        with(3, b"a\nb"),
        Err(ProtocolError::InvalidName { .. })
    ));
    assert!(matches!(
        with(4, b"\0\0"),
        Err(ProtocolError::FieldSize {
            field: "timeout",
            ..
        })
    ));
    // A reply is not a request.
    assert_eq!(
        Request::decode(&Reply::ok(1, vec![]).encode()),
        Err(ProtocolError::UnknownCommand(0x02))
    );
}

#[test]
fn envelope_split() {
    let frames = vec![b"id".to_vec(), Vec::new(), b"x".to_vec()];
    let (id, rest) = request::split_envelope(&frames).unwrap();
    assert_eq!(id, b"id");
    assert_eq!(rest, &frames[2..]);
    assert!(request::split_envelope(&frames[..1]).is_err());
    assert!(request::split_envelope(&[b"id".to_vec(), b"not empty".to_vec()]).is_err());
}

#[test]
fn garbage_messagepack_is_a_decode_error() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Point {
        x: i32,
        y: i32,
    }
    assert!(matches!(
        body::decode::<Point>(&[0xc1]),
        Err(ProtocolError::Decode(_))
    ));
    assert!(matches!(
        body::decode::<Point>(b""),
        Err(ProtocolError::Decode(_))
    ));
    let wrong_shape = body::encode(&"a string").unwrap();
    assert!(matches!(
        body::decode::<Point>(&wrong_shape),
        Err(ProtocolError::Decode(_))
    ));
    let ok = body::encode(&(1, 2)).unwrap();
    assert_eq!(body::decode::<(i32, i32)>(&ok).unwrap(), (1, 2));
}

mod mdp {
    use zhub_protocol::mdp::{ClientMessage, WorkerCommand};
    use zhub_protocol::ProtocolError;

    fn frames(parts: &[&[u8]]) -> Vec<Vec<u8>> {
        parts.iter().map(|p| p.to_vec()).collect()
    }

    #[test]
    fn worker_commands_are_byte_exact() {
        let cases = [
            (
                WorkerCommand::Ready {
                    service: "print".into(),
                    credit: 1,
                },
                frames(&[b"MDPW01", b"\x01", b"print"]),
            ),
            (
                WorkerCommand::Ready {
                    service: "print".into(),
                    credit: 16,
                },
                frames(&[b"MDPW01", b"\x01", b"print", b"\0\0\0\x10"]),
            ),
            (
                WorkerCommand::Request {
                    client: b"addr".to_vec(),
                    body: vec![b"hi".to_vec()],
                },
                frames(&[b"MDPW01", b"\x02", b"addr", b"", b"hi"]),
            ),
            (
                WorkerCommand::Reply {
                    client: b"addr".to_vec(),
                    body: vec![b"a".to_vec(), b"b".to_vec()],
                },
                frames(&[b"MDPW01", b"\x03", b"addr", b"", b"a", b"b"]),
            ),
            (
                WorkerCommand::Failed {
                    client: b"addr".to_vec(),
                    reason: "exit status 3".into(),
                },
                frames(&[b"MDPW01", b"\x06", b"addr", b"", b"exit status 3"]),
            ),
            (WorkerCommand::Heartbeat, frames(&[b"MDPW01", b"\x04"])),
            (WorkerCommand::Disconnect, frames(&[b"MDPW01", b"\x05"])),
        ];
        for (command, wire) in cases {
            assert_eq!(command.encode(), wire);
            assert_eq!(WorkerCommand::decode(&wire).unwrap(), command);
        }
    }

    #[test]
    fn failure_reasons_are_made_printable_and_bounded() {
        let long = vec![b'x'; 5000];
        let wire = frames(&[b"MDPW01", b"\x06", b"addr", b"", b"bad\n\x1b[31mline\xff"]);
        let WorkerCommand::Failed { reason, .. } = WorkerCommand::decode(&wire).unwrap() else {
            panic!("a failure")
        };
        assert!(!reason.chars().any(char::is_control), "{reason:?}");
        assert!(reason.starts_with("bad"));
        let wire = frames(&[b"MDPW01", b"\x06", b"addr", b"", &long]);
        let WorkerCommand::Failed { reason, .. } = WorkerCommand::decode(&wire).unwrap() else {
            panic!("a failure")
        };
        assert_eq!(reason.len(), zhub_protocol::mdp::MAX_REASON_LEN);
    }

    #[test]
    fn client_messages_are_byte_exact() {
        let wire = frames(&[b"MDPC01", b"echo", b"one", b"two"]);
        let message = ClientMessage::decode(&wire).unwrap();
        assert_eq!(message.service, "echo");
        assert_eq!(message.body, frames(&[b"one", b"two"]));
        assert_eq!(message.encode(), wire);
    }

    #[test]
    fn malformed_mdp_is_an_error() {
        let bad: Vec<Vec<Vec<u8>>> = vec![
            frames(&[]),
            frames(&[b"MDPW01"]),
            frames(&[b"MDPW02", b"\x01", b"svc"]),
            frames(&[b"MDPW01", b"\x09"]),
            frames(&[b"MDPW01", b""]),
            frames(&[b"MDPW01", b"\x01"]),
            frames(&[b"MDPW01", b"\x01", b"svc", b"extra"]),
            frames(&[b"MDPW01", b"\x01", b"svc", b"\0\0\0\0"]),
            frames(&[b"MDPW01", b"\x01", b"svc", b"\0\0\x04\x01"]),
            frames(&[b"MDPW01", b"\x01", b"svc", b"\0\0\0\x01", b"more"]),
            frames(&[b"MDPW01", b"\x01", b"\xff"]),
            frames(&[b"MDPW01", b"\x03", b"addr"]),
            frames(&[b"MDPW01", b"\x03", b"addr", b"not empty", b"body"]),
            frames(&[b"MDPW01", b"\x04", b"extra"]),
            frames(&[b"MDPW01", b"\x06", b"addr", b""]),
            frames(&[b"MDPW01", b"\x06", b"addr", b"x", b"why"]),
            frames(&[b"MDPW01", b"\x06", b"addr", b"", b"why", b"more"]),
        ];
        for f in &bad {
            assert!(WorkerCommand::decode(f).is_err(), "{f:?}");
        }
        assert!(matches!(
            ClientMessage::decode(&frames(&[b"MDPC01"])),
            Err(ProtocolError::FrameCount { .. })
        ));
        assert!(matches!(
            ClientMessage::decode(&frames(&[b"MDPC02", b"svc"])),
            Err(ProtocolError::UnknownProtocol(_))
        ));
        assert!(ClientMessage::decode(&frames(&[b"MDPC01", b""])).is_err());
    }
}
