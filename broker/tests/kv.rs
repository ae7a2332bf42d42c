//! The key-value store through the broker: operations, CAS races, TTLs, watches, replicas
//! across a restart, SIGKILL recovery, and clear errors.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{deadline, kill_while_writing, spawn_broker_with, start, BrokerChild, Transport};
use zhub_broker::{Broker, Config};
use zhub_client::{
    CasOutcome, ChangeKind, Client, ClientOptions, KvWrite, RequestErrorKind, MAX_BATCH,
};

const LIMIT: Duration = Duration::from_secs(90);

#[test]
fn get_put_delete_cas_incr_list_history() {
    deadline(LIMIT, || {
        let broker = start(Transport::Tcp);
        let mut client = Client::connect(&broker.url).unwrap();
        let mut kv = client.kv();
        assert_eq!(kv.get::<String>("colour").unwrap(), None);
        let r1 = kv.put("colour", "blue").unwrap();
        assert_eq!(kv.get::<String>("colour").unwrap().as_deref(), Some("blue"));
        let entry = kv.get_entry("colour").unwrap().unwrap();
        assert_eq!((entry.revision, entry.expires_at_us), (r1, None));

        // CAS: from the right revision once; a stale one fails and says what is current.
        let r2 = match kv.cas("colour", Some(r1), "green").unwrap() {
            CasOutcome::Stored(r) => r,
            other => panic!("{other:?}"),
        };
        assert!(r2 > r1);
        assert_eq!(
            kv.cas("colour", Some(r1), "red").unwrap(),
            CasOutcome::Mismatch { current: Some(r2) }
        );
        assert_eq!(
            kv.cas("colour", None, "red").unwrap(),
            CasOutcome::Mismatch { current: Some(r2) }
        );
        assert!(matches!(
            kv.cas("new", None, "created").unwrap(),
            CasOutcome::Stored(_)
        ));

        // Counters.
        assert_eq!(kv.incr("hits", 5).unwrap().0, 5);
        assert_eq!(kv.incr("hits", -2).unwrap().0, 3);
        assert_eq!(kv.get::<i64>("hits").unwrap(), Some(3));
        let err = kv.incr("colour", 1).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected, "{err}");

        // Delete: a revision when it existed, None when it did not.
        assert!(kv.delete("new").unwrap().is_some());
        assert_eq!(kv.delete("new").unwrap(), None);
        assert_eq!(kv.get_bytes("new").unwrap(), None);

        // List by prefix with paging.
        for i in 0..25 {
            kv.put(&format!("cfg.{i:02}"), &i).unwrap();
        }
        let (page, more) = kv.list("cfg.", None, 10).unwrap();
        assert_eq!(page.len(), 10);
        assert!(more);
        assert_eq!(page[0].key, "cfg.00");
        let (page, _) = kv.list("cfg.", Some("cfg.09"), 10).unwrap();
        assert_eq!(page[0].key, "cfg.10");
        let all = kv.list_all("cfg.").unwrap();
        assert_eq!(all.len(), 25);

        // History: newest first.
        let history = kv.history("colour", 10).unwrap();
        let revisions: Vec<u64> = history.iter().map(|c| c.revision).collect();
        assert_eq!(revisions, vec![r2, r1]);
        assert_eq!(history[0].kind, ChangeKind::Put);
    });
}

#[test]
fn bad_keys_and_oversized_values_are_clear_errors() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let mut client = Client::connect(&broker.url).unwrap();
        // A key that breaks the protocol's key rule is a bad request.
        for key in ["", "a\nb", &"k".repeat(2000)] {
            let err = client.kv().put(key, &1).unwrap_err();
            assert_eq!(err.kind(), RequestErrorKind::BadRequest, "{key:?}: {err}");
            assert!(err.to_string().contains("key"), "{err}");
            let err = client.kv().get::<i32>(key).unwrap_err();
            assert_eq!(err.kind(), RequestErrorKind::BadRequest);
        }
        let big = vec![0u8; 2 << 20];
        let err = client.kv().put_bytes("big", &big, None).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected);
        assert!(err.to_string().contains("limit"), "{err}");
        // A body that is not a request at all is a bad request, for both storage services.
        for service in ["zhub.kv", "zhub.log"] {
            let err = client.request_bytes(service, b"\xc1garbage").unwrap_err();
            assert_eq!(err.kind(), RequestErrorKind::BadRequest, "{service}: {err}");
        }
        // The store is still fine.
        client.kv().put("ok", &1).unwrap();
    });
}

#[test]
fn batches_read_and_write_many_keys_in_one_request() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let mut client = Client::connect(&broker.url).unwrap();
        let mut watcher = client.kv().watch("batch.").unwrap();
        let keys: Vec<String> = (0..100).map(|i| format!("batch.{i:03}")).collect();
        let values: Vec<Vec<u8>> = (0..100).map(|i| format!("v{i}").into_bytes()).collect();
        let entries: Vec<(&str, &[u8])> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let revisions = client.kv().put_many(&entries, None).unwrap();
        assert_eq!(revisions.len(), 100);
        assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");

        let mut asked: Vec<&str> = keys.iter().map(String::as_str).collect();
        asked.insert(50, "batch.missing");
        let got = client.kv().get_many(&asked).unwrap();
        assert_eq!(got.len(), 101);
        assert!(got[50].is_none());
        for (i, entry) in got.iter().enumerate().filter(|(i, _)| *i != 50) {
            let n = if i < 50 { i } else { i - 1 };
            let entry = entry.as_ref().unwrap();
            assert_eq!(
                (entry.key.as_str(), &entry.value),
                (keys[n].as_str(), &values[n])
            );
            assert_eq!(entry.revision, revisions[n]);
        }

        // Writes apply in order: a put then a delete of one key leaves it deleted.
        let mixed = client
            .kv()
            .write_many(vec![
                KvWrite::Put {
                    key: "batch.x".into(),
                    value: b"1".to_vec(),
                    ttl_ms: None,
                },
                KvWrite::Delete {
                    key: "batch.x".into(),
                },
                KvWrite::Delete {
                    key: "batch.never".into(),
                },
            ])
            .unwrap();
        assert!(mixed[0].is_some() && mixed[1] > mixed[0] && mixed[2].is_none());
        assert_eq!(client.kv().get_bytes("batch.x").unwrap(), None);
        assert_eq!(
            client.kv().delete_many(&["batch.nothing"]).unwrap(),
            vec![None]
        );
        let deleted = client
            .kv()
            .delete_many(&["batch.000", "batch.001"])
            .unwrap();
        assert!(deleted.iter().all(Option::is_some));

        // Watchers see every change of a batch, in order.
        let mut seen = Vec::new();
        while seen.len() < 104 {
            let change = watcher
                .recv_timeout(Duration::from_secs(10))
                .unwrap()
                .unwrap();
            seen.push(change.revision);
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(&seen[..100], &revisions[..]);

        // Refused whole: a value over the limit, a bad key, an empty or an oversized batch.
        let big = vec![0u8; 2 << 20];
        let err = client
            .kv()
            .put_many(&[("batch.fine", &b"ok"[..]), ("batch.big", &big[..])], None)
            .unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected, "{err}");
        assert_eq!(client.kv().get_bytes("batch.fine").unwrap(), None);
        let err = client
            .kv()
            .put_many(&[("batch.fine", &b"ok"[..]), ("bad\nkey", &b"x"[..])], None)
            .unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::BadRequest, "{err}");
        assert_eq!(client.kv().get_bytes("batch.fine").unwrap(), None);
        let err = client.kv().get_many(&[]).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::BadRequest, "{err}");
        let many: Vec<String> = (0..=MAX_BATCH).map(|i| format!("k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = client.kv().get_many(&many).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::BadRequest, "{err}");
        assert!(err.to_string().contains("batch size"), "{err}");
    });
}

/// Eight clients race read-then-CAS increments on one key: every revision has exactly one
/// winner, and no increment is lost.
#[test]
fn cas_races_have_exactly_one_winner_per_revision() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let url = broker.url.clone();
        Client::connect(&url).unwrap().kv().put("n", &0u64).unwrap();
        let wins: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (url, wins) = (url.clone(), Arc::clone(&wins));
                std::thread::spawn(move || {
                    let mut client = Client::connect(&url).unwrap();
                    let mut won = 0;
                    while won < 25 {
                        let entry = client.kv().get_entry("n").unwrap().unwrap();
                        let n: u64 = zhub_protocol::body::decode(&entry.value).unwrap();
                        if let CasOutcome::Stored(r) = client
                            .kv()
                            .cas("n", Some(entry.revision), &(n + 1))
                            .unwrap()
                        {
                            wins.lock().unwrap().push((entry.revision, r));
                            won += 1;
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let wins = wins.lock().unwrap();
        assert_eq!(wins.len(), 200);
        let mut from: Vec<u64> = wins.iter().map(|w| w.0).collect();
        from.sort_unstable();
        from.dedup();
        assert_eq!(from.len(), 200, "two winners from the same revision");
        let n: u64 = Client::connect(&url)
            .unwrap()
            .kv()
            .get("n")
            .unwrap()
            .unwrap();
        assert_eq!(n, 200);
    });
}

#[test]
fn watchers_see_every_change_in_order_including_expiry() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let mut client = Client::connect(&broker.url).unwrap();
        let mut watcher = client.kv().watch("session.").unwrap();
        let mut other = client.kv().watch("unrelated.").unwrap();

        let r1 = client.kv().put("session.a", "one").unwrap();
        let r2 = client.kv().put("session.a", "two").unwrap();
        let r3 = client.kv().delete("session.a").unwrap().unwrap();
        client.kv().put("elsewhere", "x").unwrap();
        let r4 = client
            .kv()
            .put_ttl("session.short", "soon gone", Duration::from_millis(50))
            .unwrap();

        let mut seen = Vec::new();
        while seen.len() < 5 {
            let change = watcher
                .recv_timeout(Duration::from_secs(10))
                .unwrap()
                .unwrap();
            seen.push((change.revision, change.key.clone(), change.kind));
        }
        assert_eq!(seen[0], (r1, "session.a".into(), ChangeKind::Put));
        assert_eq!(seen[1], (r2, "session.a".into(), ChangeKind::Put));
        assert_eq!(seen[2], (r3, "session.a".into(), ChangeKind::Delete));
        assert_eq!(seen[3], (r4, "session.short".into(), ChangeKind::Put));
        assert_eq!(seen[4].1, "session.short");
        assert_eq!(seen[4].2, ChangeKind::Expire);
        assert!(seen[4].0 > r4);
        assert_eq!(client.kv().get::<String>("session.short").unwrap(), None);
        assert!(other
            .recv_timeout(Duration::from_millis(50))
            .unwrap()
            .is_none());
    });
}

/// A replica equals the store after concurrent writers, and after the broker restarts under
/// it (it reconnects by itself and goes on from the revision it reached).
#[test]
fn a_replica_follows_concurrent_writes_and_a_restart() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::local_ipc(dir.path());
        let broker = Broker::start(&config).unwrap();
        let url = broker.info().main.clone();
        let mut client = Client::connect(&url).unwrap();
        client.kv().put("app.before", &0).unwrap();
        let replica = client.kv().replica("app.").unwrap();
        assert_eq!(replica.get::<i32>("app.before").unwrap(), Some(0));

        let write = |url: String, w: u32| {
            std::thread::spawn(move || {
                let mut c = Client::connect(&url).unwrap();
                let mut last = 0;
                for i in 0..100u32 {
                    let key = format!("app.w{w}.k{}", i % 10);
                    last = if i % 7 == 6 {
                        c.kv().delete(&key).unwrap().unwrap_or(last)
                    } else {
                        c.kv().put(&key, &i).unwrap()
                    };
                    c.kv().put("other.noise", &i).unwrap();
                }
                last
            })
        };
        let writers: Vec<_> = (0..4).map(|w| write(url.clone(), w)).collect();
        let last = writers
            .into_iter()
            .map(|w| w.join().unwrap())
            .max()
            .unwrap();
        assert!(replica.wait_for(last, Duration::from_secs(20)));
        let expected = |client: &mut Client| -> BTreeMap<String, Vec<u8>> {
            client
                .kv()
                .list_all("app.")
                .unwrap()
                .into_iter()
                .map(|e| (e.key, e.value))
                .collect()
        };
        let values = |replica: &zhub_client::Replica| -> BTreeMap<String, Vec<u8>> {
            replica
                .entries()
                .into_iter()
                .map(|(k, e)| (k, e.value))
                .collect()
        };
        assert_eq!(values(&replica), expected(&mut client));
        drop(client);

        // Restart the broker under the replica, then write again.
        broker.shutdown();
        let broker = Broker::start(&config).unwrap();
        let mut client = Client::connect(&broker.info().main).unwrap();
        let r = client.kv().put("app.after", &"restart").unwrap();
        client.kv().delete("app.before").unwrap();
        let r = client.kv().put("app.after", &"again").unwrap().max(r);
        assert!(replica.wait_for(r, Duration::from_secs(30)));
        assert_eq!(values(&replica), expected(&mut client));
        assert_eq!(
            replica.snapshots(),
            1,
            "a reconnect goes on without a new snapshot"
        );
    });
}

/// Eight writers put while the broker (with `extra` flags) is killed with SIGKILL; after a
/// restart every acknowledged put is there with its value and revision.
fn acknowledged_puts_survive_sigkill(extra: &'static [&'static str]) {
    deadline(LIMIT, move || {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, url) = spawn_broker_with(dir.path(), extra);
        // Key -> (revision, value) of its last acknowledged put (each key has one writer,
        // whose acknowledgements come in order).
        let acked: HashMap<String, (u64, Vec<u8>)> =
            kill_while_writing(&mut child, &url, 8, 1500, |c, w, i| {
                let key = format!("w{w}.k{}", i % 300);
                let value = format!("{w}/{i}").into_bytes();
                let revision = c.kv().put_bytes(&key, &value, None).ok()?;
                Some((key, (revision, value)))
            })
            .into_iter()
            .collect();

        let (child, url) = spawn_broker_with(dir.path(), extra);
        let _child = BrokerChild(child);
        let mut client = ClientOptions::new()
            .timeout(Duration::from_secs(10))
            .connect(&url)
            .unwrap();
        for (key, (revision, value)) in &acked {
            let entry = client.kv().get_entry(key).unwrap();
            // A put whose acknowledgement was lost in the kill may have landed after the
            // acknowledged one; never an older one.
            let entry = entry.unwrap_or_else(|| panic!("acknowledged key {key} lost"));
            assert!(entry.revision >= *revision, "{key} went back in time");
            if entry.revision == *revision {
                assert_eq!(&entry.value, value);
            }
        }
    });
}

/// A put of 1,000 keys in one request, SIGKILL of the broker right after its
/// acknowledgement: every key is there after the restart, at its revision.
#[test]
fn a_thousand_key_batch_survives_sigkill_right_after_its_acknowledgement() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let (child, url) = spawn_broker_with(dir.path(), &[]);
        let mut child = BrokerChild(child);
        let keys: Vec<String> = (0..1000).map(|i| format!("bulk.{i:04}")).collect();
        let entries: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), k.as_bytes())).collect();
        let revisions = Client::connect(&url)
            .unwrap()
            .kv()
            .put_many(&entries, None)
            .unwrap();
        child.0.kill().unwrap();
        child.0.wait().unwrap();

        let (child, url) = spawn_broker_with(dir.path(), &[]);
        let _child = BrokerChild(child);
        let mut client = Client::connect(&url).unwrap();
        let asked: Vec<&str> = keys.iter().map(String::as_str).collect();
        let got = client.kv().get_many(&asked).unwrap();
        for ((key, entry), revision) in keys.iter().zip(got).zip(revisions) {
            let entry = entry.unwrap_or_else(|| panic!("acknowledged key {key} lost"));
            assert_eq!(
                (entry.value.as_slice(), entry.revision),
                (key.as_bytes(), revision)
            );
        }
    });
}

/// A batch body of the wrong shape is a clear bad request, and the store goes on.
#[test]
fn malformed_batch_bodies_are_bad_requests() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let mut client = Client::connect(&broker.url).unwrap();
        #[derive(serde::Serialize)]
        struct Odd {
            op: &'static str,
            writes: u32,
        }
        let body = zhub_protocol::body::encode(&Odd {
            op: "write_many",
            writes: 5,
        })
        .unwrap();
        let err = client.request_bytes("zhub.kv", &body).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::BadRequest, "{err}");
        let unknown = zhub_protocol::body::encode(&Odd {
            op: "get_most",
            writes: 1,
        })
        .unwrap();
        let err = client.request_bytes("zhub.kv", &unknown).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::BadRequest, "{err}");
        assert_eq!(client.kv().get_many(&["a"]).unwrap(), vec![None]);
    });
}

/// Every write of an acknowledged batch survives a SIGKILL of the broker (under `always`,
/// the batch was synced once before its acknowledgement).
#[test]
fn acknowledged_batches_survive_sigkill_of_the_broker() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, url) = spawn_broker_with(dir.path(), &[]);
        let acked: Vec<Vec<(String, u64, Vec<u8>)>> =
            kill_while_writing(&mut child, &url, 4, 200, |c, w, i| {
                let writes: Vec<(String, Vec<u8>)> = (0..20)
                    .map(|j| {
                        let key = format!("w{w}.k{}", (i * 20 + j) % 500);
                        (key, format!("{w}/{i}/{j}").into_bytes())
                    })
                    .collect();
                let entries: Vec<(&str, &[u8])> = writes
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect();
                let revisions = c.kv().put_many(&entries, None).ok()?;
                Some(
                    writes
                        .into_iter()
                        .zip(revisions)
                        .map(|((k, v), r)| (k, r, v))
                        .collect(),
                )
            });
        // Each key's last acknowledged write (its writer's acknowledgements come in order).
        let mut last: HashMap<String, (u64, Vec<u8>)> = HashMap::new();
        for (key, revision, value) in acked.into_iter().flatten() {
            last.insert(key, (revision, value));
        }

        let (child, url) = spawn_broker_with(dir.path(), &[]);
        let _child = BrokerChild(child);
        let mut client = ClientOptions::new()
            .timeout(Duration::from_secs(10))
            .connect(&url)
            .unwrap();
        let keys: Vec<&String> = last.keys().collect();
        for chunk in keys.chunks(500) {
            let asked: Vec<&str> = chunk.iter().map(|k| k.as_str()).collect();
            let got = client.kv().get_many(&asked).unwrap();
            for (key, entry) in asked.iter().zip(got) {
                let (revision, value) = &last[*key];
                let entry = entry.unwrap_or_else(|| panic!("acknowledged key {key} lost"));
                assert!(entry.revision >= *revision, "{key} went back in time");
                if entry.revision == *revision {
                    assert_eq!(&entry.value, value);
                }
            }
        }
    });
}

/// Under `always` (the default) an acknowledged put was synced.
#[test]
fn acknowledged_puts_survive_sigkill_of_the_broker() {
    acknowledged_puts_survive_sigkill(&[]);
}

/// Under `never` an acknowledged put is not synced but is in the file: a crash of the
/// process (not of the machine) loses none.
#[test]
fn acknowledged_puts_survive_sigkill_of_the_broker_under_never() {
    acknowledged_puts_survive_sigkill(&["--kv-fsync", "never"]);
}
