//! Pipelines: many requests in flight on one client, never more than the window, outcomes in
//! the order the requests were sent whatever order the replies come in; key-value operations
//! pipelined, each with its own outcome.

mod common;

use std::time::Duration;

use common::{deadline, start, Transport};
use zhub_client::{Client, KvDone, RequestErrorKind};
use zhub_worker::WorkerOptions;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_pipeline_keeps_its_window_and_hands_outcomes_out_in_the_order_sent() {
    deadline(LIMIT, || {
        const WINDOW: usize = 4;
        const REQUESTS: u32 = 200;
        let broker = start(Transport::Tcp);
        // A worker that could take 16 at once holds all it is sent, then answers them newest
        // first: it only ever holds what the pipeline lets out.
        let mut worker = WorkerOptions::new()
            .concurrency(16)
            .connect(&broker.url, "held")
            .unwrap();
        let serving = std::thread::spawn(move || {
            let mut most = 0;
            let mut served = 0;
            while served < REQUESTS {
                let mut held = vec![worker.recv().unwrap()];
                while let Some(request) = worker.recv_timeout(Duration::from_millis(20)).unwrap() {
                    held.push(request);
                }
                most = most.max(held.len());
                for request in held.iter().rev() {
                    worker.reply(request, request.body()).unwrap();
                    served += 1;
                }
            }
            // Dropped at once: the replies it gave still reach the client.
            most
        });
        let mut client = Client::connect(&broker.url).unwrap();
        let mut pipeline = client.pipeline(WINDOW);
        let mut outcomes = Vec::new();
        for i in 0..REQUESTS {
            pipeline.send_bytes("held", &i.to_be_bytes()).unwrap();
            assert!(pipeline.in_flight() <= WINDOW);
            if i % 3 == 0 {
                outcomes.extend(pipeline.recv());
            }
        }
        outcomes.extend(pipeline.flush());
        assert_eq!(pipeline.pending(), 0);
        assert!(pipeline.recv().is_none());
        drop(pipeline);
        let got: Vec<u32> = outcomes
            .into_iter()
            .map(|o| u32::from_be_bytes(o.unwrap().try_into().unwrap()))
            .collect();
        assert_eq!(got, (0..REQUESTS).collect::<Vec<_>>());
        let most = serving.join().unwrap();
        assert!(
            (2..=WINDOW).contains(&most),
            "the worker held {most} at once"
        );
        // Nothing is left over for the client's own replies.
        assert_eq!(client.in_flight(), 0);
    });
}

#[test]
fn a_failed_request_fails_alone_a_dropped_pipeline_leaves_nothing_behind_and_bodies_may_be_typed() {
    deadline(LIMIT, || {
        let broker = start(Transport::Tcp);
        let worker = zhub_worker::Worker::connect(&broker.url, "echo").unwrap();
        let stop = worker.stopper();
        let serving = std::thread::spawn(move || worker.run(|body| body.to_vec()));
        let mut client = Client::connect(&broker.url).unwrap();
        // A request to a service nobody serves waits for a worker until its timeout.
        let mut pipeline = client.pipeline(8).timeout(Duration::from_millis(300));
        pipeline.send_bytes("echo", b"one").unwrap();
        pipeline.send_bytes("nobody.here", b"two").unwrap();
        let refused = pipeline.send_bytes("", b"");
        assert_eq!(
            refused.unwrap_err().kind(),
            RequestErrorKind::BadRequest,
            "refused before it left"
        );
        pipeline.send_bytes("echo", b"three").unwrap();
        assert_eq!(pipeline.recv().unwrap().unwrap(), b"one");
        assert_eq!(
            pipeline.recv().unwrap().unwrap_err().kind(),
            RequestErrorKind::NoService
        );
        assert_eq!(pipeline.recv().unwrap().unwrap(), b"three");
        drop(pipeline);
        // Dropped with requests in flight: their replies are taken and dropped.
        let mut pipeline = client.pipeline(8);
        for _ in 0..5 {
            pipeline.send_bytes("echo", b"late").unwrap();
        }
        drop(pipeline);
        assert_eq!(client.in_flight(), 0);
        assert_eq!(client.request_bytes("echo", b"after").unwrap(), b"after");
        // MessagePack both ways.
        let mut pipeline = client.pipeline(2);
        for n in 0..10u32 {
            pipeline.send("echo", &n).unwrap();
        }
        let back: Vec<u32> = std::iter::from_fn(|| pipeline.recv_typed::<u32>())
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, (0..10).collect::<Vec<_>>());
        drop(pipeline);
        stop.stop();
        serving.join().unwrap().unwrap();
    });
}

#[test]
fn pipelined_key_value_operations_each_have_their_outcome_in_order() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let mut client = Client::connect(&broker.url).unwrap();
        let mut kv = client.kv().pipeline(32);
        for i in 0..1000u32 {
            kv.put(&format!("p.{i:04}"), &i).unwrap();
        }
        kv.get("p.0007").unwrap();
        kv.get("p.absent").unwrap();
        kv.put_bytes("", b"x", None).unwrap(); // an invalid key fails alone
        kv.incr("p.count", 5).unwrap();
        kv.incr("p.count", 2).unwrap();
        kv.delete("p.0001").unwrap();
        kv.delete("p.0001").unwrap();
        let outcomes = kv.flush();
        assert_eq!(outcomes.len(), 1007);
        let revisions: Vec<u64> = outcomes[..1000]
            .iter()
            .map(|o| match o {
                Ok(KvDone::Stored(revision)) => *revision,
                other => panic!("a put answered {other:?}"),
            })
            .collect();
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "stored in the order sent"
        );
        match &outcomes[1000] {
            Ok(KvDone::Entry(Some(entry))) => {
                assert_eq!(zhub_protocol::body::decode::<u32>(&entry.value).unwrap(), 7);
                assert_eq!(entry.revision, revisions[7]);
            }
            other => panic!("get answered {other:?}"),
        }
        assert!(matches!(outcomes[1001], Ok(KvDone::Entry(None))));
        assert_eq!(
            outcomes[1002].as_ref().unwrap_err().kind(),
            RequestErrorKind::BadRequest
        );
        assert!(matches!(
            outcomes[1003],
            Ok(KvDone::Counter { value: 5, .. })
        ));
        assert!(matches!(
            outcomes[1004],
            Ok(KvDone::Counter { value: 7, .. })
        ));
        assert!(matches!(outcomes[1005], Ok(KvDone::Deleted(Some(_)))));
        assert!(matches!(outcomes[1006], Ok(KvDone::Deleted(None))));
        drop(kv);
        assert_eq!(client.kv().get::<u32>("p.0999").unwrap(), Some(999));
        assert_eq!(client.kv().get::<u32>("p.0001").unwrap(), None);
    });
}
