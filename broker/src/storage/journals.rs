//! The storage thread's side of durable topics: routes, the journal tap's messages, and
//! journaled messages published again.

use super::*;

impl Storage {
    /// Adds a journal route, creating its stream when missing.
    pub(super) fn journal(&mut self, prefix: String, stream: String) -> Result<LogReply, Refusal> {
        journal::check_prefix(&prefix).map_err(|why| Refusal(Status::Rejected, why))?;
        if self.log.stream(&stream).is_none() {
            self.check_room(&stream)?;
            self.log.create_stream(&stream, StreamConfig::default())?;
        }
        let mut routes = self.parts.journals.routes();
        routes.push(JournalRoute {
            prefix: prefix.clone(),
            stream: stream.clone(),
        });
        self.save_routes(routes)?;
        info!(?prefix, ?stream, "journaling topics");
        Ok(LogReply::Journaling)
    }

    /// Saves the routes durably, then hands them to the tap.
    pub(super) fn save_routes(&mut self, mut routes: Vec<JournalRoute>) -> Result<(), Refusal> {
        routes.sort();
        routes.dedup();
        journal::save(&self.parts.log_dir, &routes).map_err(|e| {
            error!(error = %e, "cannot save the journal routes");
            Refusal(
                Status::Internal,
                format!("cannot save the journal routes: {e}"),
            )
        })?;
        self.parts.journals.set(routes);
        Ok(())
    }

    /// Drops what refers to a deleted stream: its routes and its groups' positions.
    pub(super) fn forget_stream(&mut self, stream: &str) {
        let mut routes = self.parts.journals.routes();
        let before = routes.len();
        routes.retain(|r| r.stream != stream);
        if routes.len() != before {
            // A failure is logged inside; the tap drops (and counts) messages for the
            // missing stream meanwhile.
            let _ = self.save_routes(routes);
        }
        if let Err(e) = self.parts.consumers.forget_stream(stream) {
            error!(?stream, error = %e, "cannot forget the stream's consumer groups");
        }
    }

    /// Appends up to `limit` journaled messages waiting from the tap.
    pub(super) fn drain_journal(&mut self, limit: usize) {
        for _ in 0..limit {
            let Ok(message) = self.parts.journal_in.recv_multipart(zmq::DONTWAIT) else {
                return;
            };
            let Ok([stream, frame]) = <[Vec<u8>; 2]>::try_from(message) else {
                peer_fault!(
                    self.faults,
                    "malformed message from the journal tap dropped"
                );
                continue;
            };
            let name = String::from_utf8_lossy(&stream);
            let Ok(decoded) = bus::decode(&frame) else {
                peer_fault!(self.faults, "malformed journaled frame dropped");
                continue;
            };
            let timestamp = i64::try_from(decoded.header.timestamp_us).ok();
            let topic = decoded.topic.as_bytes();
            let Some(target) = self.log.stream(&name) else {
                peer_fault!(self.faults, "journaled message for a missing stream dropped", stream = ?name);
                continue;
            };
            // Touched either way: the commit's flush or sync also reports (and so clears) a
            // failure, after which appends are taken again.
            match target.append(timestamp, Some(topic), &frame) {
                Ok(_) => self.stats.journal_records += 1,
                Err(e) => error!(stream = ?name, error = %e, "journal append failed"),
            }
            self.touched.insert(name.into_owned());
        }
    }

    /// Sends journaled messages to the bus thread until `max_records`, the end of the stream,
    /// or a full queue.
    pub(super) fn republish(
        &mut self,
        name: &str,
        from: ReadFrom,
        max_records: u64,
    ) -> Result<LogReply, Refusal> {
        let max_records = max_records.clamp(1, MAX_REPUBLISH);
        let (records, from) = self.read(name, from, MAX_READ_BYTES, max_records)?;
        let mut next_offset = from;
        let mut count = 0;
        for record in &records {
            let reserved = bus::decode(&record.value).map(|f| bus::is_reserved(f.topic));
            if reserved != Ok(false) {
                return Err(Refusal(
                    Status::Rejected,
                    format!(
                        "offset {} of stream {name} is not a journaled bus message",
                        record.offset
                    ),
                ));
            }
            match self.parts.republish.send(&record.value[..], zmq::DONTWAIT) {
                Ok(()) => {}
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => return Err(Refusal(Status::Internal, e.to_string())),
            }
            count += 1;
            next_offset = record.offset + 1;
        }
        let at_end = self
            .log
            .stream(name)
            .is_some_and(|s| next_offset >= s.next_offset());
        debug!(stream = name, count, next_offset, "republished");
        Ok(LogReply::Republished {
            count,
            next_offset,
            at_end,
        })
    }
}
