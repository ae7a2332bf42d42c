//! The storage thread's requests: the `zhub.log` and `zhub.kv` dispatch, appends, reads
//! and consumer positions.

use super::*;

/// Counts one request of `op`, making its name's string only the first time.
fn count_op(counts: &mut std::collections::BTreeMap<String, u64>, op: &'static str) {
    match counts.get_mut(op) {
        Some(n) => *n += 1,
        None => {
            counts.insert(op.to_owned(), 1);
        }
    }
}

impl Storage {
    pub(super) fn handle(&mut self, message: Vec<Vec<u8>>) -> Result<(), zmq::Error> {
        let Some(StorageRequest {
            ticket,
            service,
            body: request,
        }) = StorageRequest::decode(message)
        else {
            peer_fault!(self.faults, "malformed message from the router ignored");
            return Ok(());
        };
        match service {
            StorageService::Kv => return self.handle_kv(&ticket, &request),
            StorageService::Stats => {
                let stats = StorageStats {
                    kv_syncs: self.parts.kv.syncs.clone(),
                    ..self.stats.clone()
                };
                return self.reply(&ticket, Ok(stats));
            }
            StorageService::Log => {}
        }
        let Some(request) = self.decode::<LogRequest>(&ticket, &request)? else {
            self.stats.log_refused += 1;
            return Ok(());
        };
        count_op(&mut self.stats.log_ops, request.op());
        let result = match request {
            LogRequest::Create { stream, settings } => self
                .check_room(&stream)
                .and_then(|()| {
                    self.log
                        .create_stream(&stream, config_from(&settings))
                        .map_err(Refusal::from)
                })
                .map(|_| LogReply::Created),
            LogRequest::Append { stream, records } => match self.append(&stream, &records) {
                Ok(first_offset) => {
                    self.stats.log_records_appended += records.len() as u64;
                    // Acknowledged after this turn's commit.
                    self.acks.push(Ack {
                        ticket,
                        stream,
                        first_offset,
                        count: records.len() as u64,
                    });
                    return Ok(());
                }
                Err(e) => Err(e),
            },
            LogRequest::Read {
                stream,
                from,
                max_bytes,
                max_records,
                wait_ms,
            } => {
                let max_bytes = max_bytes.clamp(1, MAX_READ_BYTES);
                let max_records = max_records.max(1);
                match self.read_body(&stream, from, max_bytes, max_records) {
                    Ok((body, from)) if body.is_empty() && wait_ms > 0 => {
                        let wait = Duration::from_millis(wait_ms).min(MAX_WAIT);
                        self.waiting.push(WaitingRead {
                            ticket,
                            stream,
                            from,
                            max_bytes,
                            max_records,
                            deadline: Instant::now() + wait,
                        });
                        return Ok(());
                    }
                    Ok((body, next_offset)) => {
                        return self.reply_body(&ticket, Ok(body.finish(next_offset)));
                    }
                    Err(e) => Err(e),
                }
            }
            LogRequest::Streams => Ok(LogReply::Streams {
                streams: self
                    .log
                    .list()
                    .into_iter()
                    .map(|i| StreamSummary {
                        name: i.name,
                        first_offset: i.first_offset,
                        next_offset: i.next_offset,
                        records: i.records,
                        size_bytes: i.size_bytes,
                    })
                    .collect(),
            }),
            LogRequest::Delete { stream } => {
                let result = self
                    .log
                    .delete_stream(&stream)
                    .map(|()| LogReply::Deleted)
                    .map_err(Refusal::from);
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
                    .into_iter()
                    .partition(|w| w.stream == stream);
                self.waiting = kept;
                for w in gone {
                    self.reply::<()>(
                        &w.ticket,
                        Err(Refusal(
                            Status::Rejected,
                            format!("stream {stream} was deleted"),
                        )),
                    )?;
                }
                self.forget_stream(&stream);
                result
            }
            LogRequest::Commit {
                stream,
                group,
                offset,
            } => match self.commit_position(&stream, &group, offset) {
                Ok(()) => {
                    // Acknowledged after this turn's sync.
                    self.commit_acks.push(ticket);
                    return Ok(());
                }
                Err(e) => Err(e),
            },
            LogRequest::Position { stream, group } => self
                .log
                .get(&stream)
                .map(|_| LogReply::Position {
                    offset: self.parts.consumers.position(&stream, &group),
                })
                .map_err(Refusal::from),
            LogRequest::Journal { prefix, stream } => self.journal(prefix, stream),
            LogRequest::Unjournal { prefix, stream } => {
                let mut routes = self.parts.journals.routes();
                let before = routes.len();
                routes.retain(|r| !(r.prefix == prefix && r.stream == stream));
                if routes.len() == before {
                    Err(Refusal(
                        Status::Rejected,
                        format!("no journal route from {prefix:?} to {stream}"),
                    ))
                } else {
                    self.save_routes(routes).map(|()| LogReply::Unjournaled)
                }
            }
            LogRequest::Journals => Ok(LogReply::Journals {
                journals: self.parts.journals.routes(),
            }),
            LogRequest::Republish {
                stream,
                from,
                max_records,
            } => self.republish(&stream, from, max_records),
        };
        if result.is_err() {
            self.stats.log_refused += 1;
        }
        self.reply(&ticket, result)
    }

    /// Decodes a request body and checks the names it carries, answering `400 Bad Request`
    /// (and returning `None`) when it is malformed or a name breaks its rule.
    pub(super) fn decode<T: serde::de::DeserializeOwned + Named>(
        &self,
        ticket: &Ticket,
        request: &[u8],
    ) -> Result<Option<T>, zmq::Error> {
        match body::decode::<T>(request).and_then(|r| r.check_names().map(|()| r)) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                let refusal = Refusal(Status::BadRequest, e.to_string());
                self.reply::<()>(ticket, Err(refusal))?;
                Ok(None)
            }
        }
    }

    pub(super) fn handle_kv(&mut self, ticket: &Ticket, request: &[u8]) -> Result<(), zmq::Error> {
        let Some(request) = self.decode::<KvRequest>(ticket, request)? else {
            self.stats.kv_refused += 1;
            return Ok(());
        };
        count_op(&mut self.stats.kv_ops, request.op());
        match self.parts.kv.handle(ticket, request) {
            Handled::Reply(result) => {
                if result.is_err() {
                    self.stats.kv_refused += 1;
                }
                self.reply(ticket, result)
            }
            Handled::Later => Ok(()),
        }
    }

    pub(super) fn commit_position(
        &mut self,
        stream: &str,
        group: &str,
        offset: u64,
    ) -> Result<(), Refusal> {
        consumers::check_group(group).map_err(|why| Refusal(Status::Rejected, why))?;
        self.log.get(stream)?;
        self.parts.consumers.commit(stream, group, offset)?;
        Ok(())
    }

    /// Refuses a new stream when the log holds `max_streams` already.
    pub(super) fn check_room(&self, stream: &str) -> Result<(), Refusal> {
        let max = self.parts.max_streams;
        if self.log.len() >= max {
            return Err(Refusal(
                Status::Rejected,
                format!("cannot create stream {stream}: the broker holds {max} streams, its max_streams"),
            ));
        }
        Ok(())
    }

    /// Appends a batch, all or nothing: every record is checked against the limit first.
    pub(super) fn append(
        &mut self,
        name: &str,
        records: &[zhub_protocol::log::NewRecord],
    ) -> Result<u64, Refusal> {
        let stream = self.log.get(name)?;
        let limit = stream.config().max_record_bytes;
        for r in records {
            let size = zhub_eventlog::codec::framed_len(r.key.as_deref(), &r.value);
            if size > limit {
                return Err(EventLogError::RecordTooLarge { size, limit }.into());
            }
        }
        let first = stream.next_offset();
        // Touched even when an append fails: the commit's flush or sync then reports the
        // failure to this turn's other appends, and clears it for the next turn.
        self.touched.insert(name.to_owned());
        for r in records {
            // A failure takes back this batch's earlier records too (and the turn's other
            // unconfirmed ones, whose acknowledgements the commit fails).
            stream.append(r.timestamp_us, r.key.as_deref(), &r.value)?;
        }
        Ok(first)
    }

    /// The offset a read of `name` from `from` starts at: a time looked up, an offset before
    /// the stream's first (gone to retention) moved up to it.
    fn start(&mut self, name: &str, from: ReadFrom) -> Result<u64, Refusal> {
        let stream = self.log.get(name)?;
        let from = match from {
            ReadFrom::Offset(o) => o,
            ReadFrom::Time(t) => stream
                .offset_for_time(t)?
                .unwrap_or_else(|| stream.next_offset()),
        };
        Ok(from.max(stream.first_offset()))
    }

    /// Records of `name` from `from`, copied out; with the offset read from.
    pub(super) fn read(
        &mut self,
        name: &str,
        from: ReadFrom,
        max_bytes: u64,
        max_records: u64,
    ) -> Result<(Vec<Record>, u64), Refusal> {
        let from = self.start(name, from)?;
        let records = self.log.get(name)?.read(
            from,
            usize::try_from(max_bytes).unwrap_or(usize::MAX),
            usize::try_from(max_records).unwrap_or(usize::MAX),
        )?;
        Ok((records, from))
    }

    /// Records of `name` from `from`, written straight from the stream's read buffer into the
    /// body of a read's reply; with the offset the reader goes on from.
    pub(super) fn read_body(
        &mut self,
        name: &str,
        from: ReadFrom,
        max_bytes: u64,
        max_records: u64,
    ) -> Result<(RecordsBody, u64), Refusal> {
        let from = self.start(name, from)?;
        let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let mut body = RecordsBody::new();
        let mut next_offset = from;
        self.log.get(name)?.read_with(
            from,
            max_bytes,
            usize::try_from(max_records).unwrap_or(usize::MAX),
            |r| {
                body.push(r.offset, r.timestamp, r.key, r.value);
                next_offset = r.offset + 1;
            },
        )?;
        Ok((body, next_offset))
    }
}
