//! Where log records go: the [`Sink`] trait and [`FileSink`], gRPC's file format.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::mem;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use protobuf::Message as _;

use super::proto::GrpcLogEntry;

/// Receives the records a [`Logger`](super::Logger) makes.
///
/// `write` runs on the call's path (the task that sent or received what is logged), for
/// calls of many tasks at once: it should be quick and must not panic; a sink reports its
/// own errors (logging them, say) since the call cannot act on them.
///
/// # Examples
///
/// A sink that counts records by event type:
///
/// ```
/// use std::sync::Mutex;
/// use std::collections::HashMap;
/// use grpc_runtime::binarylog::Sink;
/// use grpc_runtime::binarylog::proto::GrpcLogEntry;
///
/// #[derive(Default)]
/// struct Counts(Mutex<HashMap<i32, usize>>);
///
/// impl Sink for Counts {
///     fn write(&self, entry: &GrpcLogEntry) {
///         let kind = entry.type_.value();
///         *self.0.lock().unwrap().entry(kind).or_default() += 1;
///     }
/// }
/// ```
pub trait Sink: Send + Sync + 'static {
    /// Takes one record.
    fn write(&self, entry: &GrpcLogEntry);

    /// Writes out whatever the sink holds buffered. Default: nothing to do.
    fn flush(&self) {}
}

impl<S: Sink + ?Sized> Sink for Arc<S> {
    fn write(&self, entry: &GrpcLogEntry) {
        (**self).write(entry);
    }

    fn flush(&self) {
        (**self).flush();
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn write(&self, entry: &GrpcLogEntry) {
        (**self).write(entry);
    }

    fn flush(&self) {
        (**self).flush();
    }
}

/// Buffered bytes past this size wake the writer thread before its interval is up.
const WAKE_AT: usize = 64 * 1024;
/// Records are dropped (and counted) rather than buffered past this size, when the writer
/// cannot keep up or keeps failing.
const MAX_PENDING: usize = 16 * 1024 * 1024;
/// How often the writer thread writes out what is buffered, unless told otherwise.
const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A [`Sink`] writing gRPC's binary log file format: each record is a 4-byte big-endian
/// length followed by the serialized `GrpcLogEntry` (as gRPC-Go's file sink writes it), so
/// the files read with gRPC's tools.
///
/// A call never waits on the disk: [`write`](Sink::write) serializes the record and
/// appends it to a memory buffer under a short lock; a writer thread (started by the first
/// record) writes the buffer out every flush interval, sooner once 64 KiB are waiting, and
/// [`flush`](Sink::flush) writes it out at once. Dropping the sink stops the thread and
/// writes what is left. Records are never torn: bytes a failed write left behind are
/// written first next time. Write errors are logged at `warn` (once until writes succeed
/// again); if 16 MiB pile up unwritten, further records are dropped and their number
/// logged.
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::binarylog::{Config, FileSink, Logger};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sink = FileSink::create("/var/log/grpc/binary.log")?
///     .flush_interval(std::time::Duration::from_secs(10));
/// let logger = Logger::new(Config::parse("*{h;m:1024}")?, sink);
/// # let _ = logger;
/// # Ok(())
/// # }
/// ```
pub struct FileSink {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer thread: enough is buffered, or the sink is closing.
    wake: Condvar,
    /// Held while a buffer is taken and written, so writes keep the records' order.
    out: Mutex<Output>,
}

struct Pending {
    buf: Vec<u8>,
    interval: Duration,
    writer: WriterThread,
    /// Records dropped since the last report.
    dropped: u64,
    /// The last write failed (reported once, until one succeeds); the writer thread then
    /// waits its interval before trying again, however much is buffered.
    failing: bool,
    closing: bool,
}

enum WriterThread {
    NotStarted,
    Running(thread::JoinHandle<()>),
    /// Could not be started (reported once): records are written by `flush` and on drop.
    Failed,
    Stopped,
}

struct Output {
    writer: Box<dyn Write + Send>,
}

impl fmt::Debug for FileSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pending = lock(&self.shared.pending);
        f.debug_struct("FileSink")
            .field("buffered", &pending.buf.len())
            .field("interval", &pending.interval)
            .finish_non_exhaustive()
    }
}

/// Locks, going on past a poisoned lock (nothing in these locks can be left half-done by a
/// panic that matters more than losing the log).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FileSink {
    /// Creates (or truncates) the file at `path` and writes the log to it.
    ///
    /// # Errors
    ///
    /// The error of creating the file.
    pub fn create(path: impl AsRef<Path>) -> io::Result<FileSink> {
        Ok(FileSink::from_writer(File::create(path)?))
    }

    /// Writes the log to `writer`: an open file (to append to one, open it so), a pipe, a
    /// socket.
    pub fn from_writer(writer: impl Write + Send + 'static) -> FileSink {
        FileSink {
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending {
                    buf: Vec::new(),
                    interval: DEFAULT_FLUSH_INTERVAL,
                    writer: WriterThread::NotStarted,
                    dropped: 0,
                    failing: false,
                    closing: false,
                }),
                wake: Condvar::new(),
                out: Mutex::new(Output {
                    writer: Box::new(writer),
                }),
            }),
        }
    }

    /// How often buffered records are written out (at least every millisecond). Default: 1
    /// second.
    #[must_use]
    pub fn flush_interval(self, interval: Duration) -> FileSink {
        lock(&self.shared.pending).interval = interval.max(Duration::from_millis(1));
        self.shared.wake.notify_all();
        self
    }

    fn append(&self, record: &[u8]) {
        let mut pending = lock(&self.shared.pending);
        if pending.closing {
            return;
        }
        if pending.buf.len() + record.len() > MAX_PENDING {
            if pending.dropped == 0 {
                tracing::warn!(
                    buffered = pending.buf.len(),
                    "binary log: records are not being written out fast enough; dropping records"
                );
            }
            pending.dropped += 1;
            return;
        }
        pending.buf.extend_from_slice(record);
        if matches!(pending.writer, WriterThread::NotStarted) {
            pending.writer = self.start_writer();
        }
        if pending.buf.len() >= WAKE_AT {
            self.shared.wake.notify_all();
        }
    }

    fn start_writer(&self) -> WriterThread {
        let shared = Arc::clone(&self.shared);
        match thread::Builder::new()
            .name("grpc-binarylog".into())
            .spawn(move || shared.run_writer())
        {
            Ok(handle) => WriterThread::Running(handle),
            Err(error) => {
                tracing::warn!(%error, "binary log: cannot start the writer thread; records are written only on flush");
                WriterThread::Failed
            }
        }
    }
}

impl Shared {
    /// The writer thread: writes the buffer out every interval, or when woken, until the
    /// sink closes.
    fn run_writer(&self) {
        loop {
            {
                let pending = lock(&self.pending);
                let interval = pending.interval;
                let (pending, _) = self
                    .wake
                    .wait_timeout_while(pending, interval, |p| {
                        !p.closing && (p.failing || p.buf.len() < WAKE_AT)
                    })
                    .unwrap_or_else(PoisonError::into_inner);
                if pending.closing {
                    return;
                }
            }
            self.write_out();
        }
    }

    /// Writes out everything buffered so far, in order.
    fn write_out(&self) {
        let mut out = lock(&self.out);
        let (mut chunk, dropped) = {
            let mut pending = lock(&self.pending);
            (mem::take(&mut pending.buf), mem::take(&mut pending.dropped))
        };
        if dropped > 0 {
            tracing::warn!(dropped, "binary log: records were dropped");
        }
        if chunk.is_empty() {
            return;
        }
        let mut written = 0;
        let result = loop {
            match out.writer.write(&chunk[written..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    written += n;
                    if written == chunk.len() {
                        break out.writer.flush();
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => break Err(error),
            }
        };
        let mut pending = lock(&self.pending);
        match result {
            Ok(()) => {
                if mem::take(&mut pending.failing) {
                    tracing::info!("binary log: writes succeed again");
                }
            }
            Err(error) => {
                if !mem::replace(&mut pending.failing, true) {
                    tracing::warn!(%error, "binary log: writing the log failed; will retry");
                }
                // What was not written goes back in front of what came meanwhile.
                chunk.drain(..written);
                chunk.extend_from_slice(&pending.buf);
                pending.buf = chunk;
            }
        }
    }
}

impl Sink for FileSink {
    fn write(&self, entry: &GrpcLogEntry) {
        let size = entry.compute_size();
        let Ok(len) = u32::try_from(size) else {
            tracing::warn!(size, "binary log: a record over 4 GiB was dropped");
            return;
        };
        let mut record = Vec::with_capacity(4 + len as usize);
        record.extend_from_slice(&len.to_be_bytes());
        if let Err(error) = entry.write_to_vec(&mut record) {
            tracing::warn!(%error, "binary log: a record did not serialize; dropped");
            return;
        }
        self.append(&record);
    }

    fn flush(&self) {
        self.shared.write_out();
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        let writer = {
            let mut pending = lock(&self.shared.pending);
            pending.closing = true;
            mem::replace(&mut pending.writer, WriterThread::Stopped)
        };
        self.shared.wake.notify_all();
        if let WriterThread::Running(handle) = writer {
            // The thread only waits or writes; it returns as soon as it sees `closing`.
            let _ = handle.join();
        }
        self.shared.write_out();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binarylog::proto::grpc_log_entry::EventType;

    /// A writer into shared memory, failing while told to.
    #[derive(Clone, Default)]
    struct Memory {
        bytes: Arc<Mutex<Vec<u8>>>,
        fail: Arc<Mutex<Option<usize>>>,
    }

    impl Write for Memory {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut fail = self.fail.lock().unwrap();
            match *fail {
                // Accept `n` bytes, then fail.
                Some(0) => Err(io::Error::other("disk full")),
                Some(n) => {
                    let n = n.min(buf.len());
                    *fail = Some(0);
                    self.bytes.lock().unwrap().extend_from_slice(&buf[..n]);
                    Ok(n)
                }
                None => {
                    self.bytes.lock().unwrap().extend_from_slice(buf);
                    Ok(buf.len())
                }
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn entry(call_id: u64, data: &[u8]) -> GrpcLogEntry {
        let mut entry = GrpcLogEntry::new();
        entry.call_id = call_id;
        entry.sequence_id_within_call = 1;
        entry.type_ = EventType::EVENT_TYPE_CLIENT_MESSAGE.into();
        entry.mut_message().length = data.len() as u32;
        entry.mut_message().data = data.to_vec();
        entry
    }

    /// Splits a log into its records.
    fn records(mut bytes: &[u8]) -> Vec<GrpcLogEntry> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            out.push(GrpcLogEntry::parse_from_bytes(&bytes[4..4 + len]).unwrap());
            bytes = &bytes[4 + len..];
        }
        out
    }

    #[test]
    fn records_are_length_prefixed_protos() {
        let memory = Memory::default();
        let sink = FileSink::from_writer(memory.clone()).flush_interval(Duration::from_secs(3600));
        let first = entry(1, b"hello");
        sink.write(&first);
        sink.write(&entry(2, b""));
        // Buffered until flushed.
        assert!(memory.bytes.lock().unwrap().is_empty());
        sink.flush();
        let bytes = memory.bytes.lock().unwrap().clone();
        let encoded = first.write_to_bytes().unwrap();
        assert_eq!(&bytes[..4], &(encoded.len() as u32).to_be_bytes());
        assert_eq!(&bytes[4..4 + encoded.len()], &encoded[..]);
        let read = records(&bytes);
        assert_eq!(read.len(), 2);
        assert_eq!(read[0], first);
        assert_eq!(read[1].call_id, 2);
    }

    #[test]
    fn drop_writes_what_is_left() {
        let memory = Memory::default();
        let sink = FileSink::from_writer(memory.clone()).flush_interval(Duration::from_secs(3600));
        sink.write(&entry(7, b"x"));
        drop(sink);
        let read = records(&memory.bytes.lock().unwrap());
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].call_id, 7);
    }

    #[test]
    fn writer_thread_writes_on_its_interval() {
        let memory = Memory::default();
        let sink = FileSink::from_writer(memory.clone()).flush_interval(Duration::from_millis(10));
        sink.write(&entry(3, b"abc"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while memory.bytes.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "not written in 10 s");
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(records(&memory.bytes.lock().unwrap())[0].call_id, 3);
    }

    #[test]
    fn a_large_buffer_wakes_the_writer_early() {
        let memory = Memory::default();
        let sink = FileSink::from_writer(memory.clone()).flush_interval(Duration::from_secs(3600));
        let big = vec![1u8; WAKE_AT];
        sink.write(&entry(4, &big));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while memory.bytes.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "not written in 10 s");
            thread::sleep(Duration::from_millis(5));
        }
        drop(sink);
        let read = records(&memory.bytes.lock().unwrap());
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].message().data, big);
    }

    #[test]
    fn failed_writes_are_retried_without_tearing_records() {
        let memory = Memory::default();
        let sink = FileSink::from_writer(memory.clone()).flush_interval(Duration::from_secs(3600));
        sink.write(&entry(1, b"first"));
        // Five bytes go out, then the disk is full.
        *memory.fail.lock().unwrap() = Some(5);
        sink.flush();
        assert_eq!(memory.bytes.lock().unwrap().len(), 5);
        sink.write(&entry(2, b"second"));
        sink.flush();
        assert_eq!(memory.bytes.lock().unwrap().len(), 5);
        // Space again: the rest of the first record, then the second.
        *memory.fail.lock().unwrap() = None;
        sink.flush();
        let read = records(&memory.bytes.lock().unwrap());
        assert_eq!(
            read.iter().map(|e| e.call_id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(read[1].message().data, b"second");
    }

    #[test]
    fn records_past_the_cap_are_dropped_whole() {
        let memory = Memory::default();
        *memory.fail.lock().unwrap() = Some(0);
        let sink = FileSink::from_writer(memory.clone());
        // No writer thread: only `flush` writes, so what is buffered is known.
        lock(&sink.shared.pending).writer = WriterThread::Failed;
        let big = vec![0u8; MAX_PENDING / 4];
        for id in 0..6 {
            sink.write(&entry(id, &big));
        }
        sink.flush();
        assert!(memory.bytes.lock().unwrap().is_empty());
        *memory.fail.lock().unwrap() = None;
        sink.flush();
        let read = records(&memory.bytes.lock().unwrap());
        // Three fit under the cap (each is a little over a quarter of it).
        assert_eq!(
            read.iter().map(|e| e.call_id).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn sinks_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<FileSink>();
        check::<Arc<dyn Sink>>();
    }
}
