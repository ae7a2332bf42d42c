//! The replicated register that four of the examples share: every node keeps each key's
//! value with a tag (a version and its writer), and the examples differ only in how many
//! replicas a write waits for and where a read looks ([`Mode`]).
//!
//! Tags order writes: (version, writer), compared as a pair, so two writers that pick the
//! same version still differ. A replica keeps the value with the highest tag it has seen, in
//! durable storage, so a crash loses nothing it acknowledged.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::node::{CallId, Ctx, Gather, Need, Node, NodeId, RequestId};
use crate::workload::{Op, Outcome, Value};

/// How long a node waits for another's reply.
const CALL_TIMEOUT: Duration = Duration::from_millis(100);

/// A write's place in the order of writes: (version, writer).
pub type Tag = (u64, NodeId);

/// What replicas say to each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Asks for a key's tag and value.
    Get {
        /// The register.
        key: u64,
    },
    /// A replica's tag and value for the key asked.
    Got {
        /// The tag (version 0 when never written).
        tag: Tag,
        /// The value, if ever written.
        value: Option<u64>,
    },
    /// Asks a replica to keep this value if its tag is newer than the one it has.
    Put {
        /// The register.
        key: u64,
        /// The write's tag.
        tag: Tag,
        /// The value.
        value: Option<u64>,
    },
    /// The replica has a tag at least as new.
    PutOk,
}

/// A replica's registers: key -> (tag, value).
pub type Store = HashMap<u64, (Tag, Option<u64>)>;

/// Where a read looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// The replica that got the request, alone.
    Local,
    /// A majority, answering the value with the highest tag.
    Majority,
    /// A majority, then writing that value back to a majority before answering (ABD).
    MajorityWriteBack,
}

/// How a register replicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// Whether a write first asks a majority for the highest tag (else it uses its own
    /// replica's tag plus one).
    pub write_query: bool,
    /// How many replicas must keep a write before it is acknowledged.
    pub write_need: Need,
    /// Where reads look.
    pub read: Read,
}

#[derive(Debug)]
enum Phase {
    ReadQuery {
        request: RequestId,
        key: u64,
    },
    WriteBack {
        request: RequestId,
        value: Option<u64>,
    },
    WriteQuery {
        request: RequestId,
        key: u64,
        value: u64,
    },
    WriteDone {
        request: RequestId,
    },
}

/// One replica.
#[derive(Debug)]
pub struct Register {
    mode: Mode,
    gather: Gather<Phase, Msg>,
}

impl Register {
    /// A replica replicating as `mode` says.
    pub fn new(mode: Mode) -> Self {
        Register {
            mode,
            gather: Gather::new(),
        }
    }

    fn highest(replies: &[(NodeId, Msg)]) -> (Tag, Option<u64>) {
        let mut best = ((0, 0), None);
        for (_, reply) in replies {
            if let Msg::Got { tag, value } = reply {
                if *tag > best.0 {
                    best = (*tag, *value);
                }
            }
        }
        best
    }

    fn put(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        key: u64,
        tag: Tag,
        value: Option<u64>,
        phase: Phase,
    ) {
        let targets = match self.mode.write_need {
            // Waiting for all: the others are asked, this replica has kept it already.
            Need::All => {
                keep(ctx.storage(), key, tag, value);
                let me = ctx.me();
                ctx.all().filter(|&n| n != me).collect::<Vec<_>>()
            }
            _ => ctx.all().collect(),
        };
        let put = Msg::Put { key, tag, value };
        if let Err(phase) = self.gather.start(
            ctx,
            targets,
            &put,
            self.mode.write_need,
            CALL_TIMEOUT,
            phase,
        ) {
            // A single node: nobody else to wait for.
            self.finish(ctx, phase, true, &[]);
        }
    }

    fn finish(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        phase: Phase,
        reached: bool,
        replies: &[(NodeId, Msg)],
    ) {
        match phase {
            Phase::ReadQuery { request, key } => {
                if !reached {
                    // A read changes nothing, so one that gave up certainly had no effect.
                    ctx.answer(request, Outcome::Fail("no quorum".into()));
                    return;
                }
                let (tag, value) = Self::highest(replies);
                if self.mode.read == Read::MajorityWriteBack {
                    self.put(ctx, key, tag, value, Phase::WriteBack { request, value });
                } else {
                    ctx.answer(request, Outcome::Ok(value_of(value)));
                }
            }
            Phase::WriteBack { request, value } => {
                if reached {
                    ctx.answer(request, Outcome::Ok(value_of(value)));
                } else {
                    ctx.answer(request, Outcome::Fail("no quorum".into()));
                }
            }
            Phase::WriteQuery {
                request,
                key,
                value,
            } => {
                if !reached {
                    ctx.answer(request, Outcome::Fail("no quorum".into()));
                    return;
                }
                let ((version, _), _) = Self::highest(replies);
                let tag = (version + 1, ctx.me());
                self.put(ctx, key, tag, Some(value), Phase::WriteDone { request });
            }
            Phase::WriteDone { request } => {
                // Some replicas may keep a write that did not reach its quorum.
                ctx.answer(
                    request,
                    if reached {
                        Outcome::Ok(Value::None)
                    } else {
                        Outcome::Unknown
                    },
                );
            }
        }
    }
}

fn value_of(value: Option<u64>) -> Value {
    value.map_or(Value::None, Value::Int)
}

/// Keeps `value` if `tag` is newer than the stored one.
fn keep(store: &mut Store, key: u64, tag: Tag, value: Option<u64>) {
    let entry = store.entry(key).or_insert(((0, 0), None));
    if tag > entry.0 {
        *entry = (tag, value);
    }
}

/// A replica's registers in brief, by key: `k3=7 v2.n1` (key 3 holds 7, version 2 by n1;
/// `k4=-`: never written).
pub(crate) fn describe_store(store: &Store) -> String {
    let mut keys: Vec<_> = store.iter().collect();
    keys.sort_unstable_by_key(|(key, _)| **key);
    let parts: Vec<String> = keys
        .iter()
        .map(|(key, ((version, writer), value))| match value {
            Some(value) if *version > 0 => format!("k{key}={value} v{version}.n{}", writer + 1),
            // Asked about, never written.
            _ => format!("k{key}=-"),
        })
        .collect();
    if parts.is_empty() {
        "empty".to_string()
    } else {
        parts.join(" ")
    }
}

impl Node for Register {
    type Msg = Msg;
    type Store = Store;

    fn describe(&self, store: &Store) -> String {
        describe_store(store)
    }

    fn on_client(&mut self, ctx: &mut Ctx<'_, Self>, request: RequestId, op: Op) {
        let all: Vec<NodeId> = ctx.all().collect();
        match op {
            Op::Read { key } => {
                if self.mode.read == Read::Local {
                    let value = ctx.storage().get(&key).and_then(|(_, v)| *v);
                    ctx.answer(request, Outcome::Ok(value_of(value)));
                    return;
                }
                let phase = Phase::ReadQuery { request, key };
                if let Err(phase) = self.gather.start(
                    ctx,
                    all,
                    &Msg::Get { key },
                    Need::Majority,
                    CALL_TIMEOUT,
                    phase,
                ) {
                    self.finish(ctx, phase, false, &[]);
                }
            }
            Op::Write { key, value } => {
                if self.mode.write_query {
                    let phase = Phase::WriteQuery {
                        request,
                        key,
                        value,
                    };
                    if let Err(phase) = self.gather.start(
                        ctx,
                        all,
                        &Msg::Get { key },
                        Need::Majority,
                        CALL_TIMEOUT,
                        phase,
                    ) {
                        self.finish(ctx, phase, false, &[]);
                    }
                } else {
                    let version = ctx.storage().get(&key).map_or(0, |((v, _), _)| *v);
                    let tag = (version + 1, ctx.me());
                    self.put(ctx, key, tag, Some(value), Phase::WriteDone { request });
                }
            }
            // Compare-and-set needs consensus, which quorum registers do not reach.
            _ => ctx.answer(request, Outcome::Fail("unsupported".into())),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, _from: NodeId, msg: Msg) {
        match msg {
            Msg::Get { key } => {
                let (tag, value) = ctx.storage().get(&key).copied().unwrap_or(((0, 0), None));
                ctx.reply(Msg::Got { tag, value });
            }
            Msg::Put { key, tag, value } => {
                keep(ctx.storage(), key, tag, value);
                ctx.reply(Msg::PutOk);
            }
            Msg::Got { .. } | Msg::PutOk => {}
        }
    }

    fn on_reply(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        call: CallId,
        from: NodeId,
        reply: Option<Msg>,
    ) {
        if let Some(done) = self.gather.on_reply(call, from, reply) {
            self.finish(ctx, done.state, done.reached, &done.replies);
        }
    }
}
