//! Threads and channels: `spawn join chan send recv close` (LANGUAGE.md),
//! on real OS threads. The contract is docs/REGION_THREADING_MODEL.md:
//!
//! * every VM thread owns its regions; values cross threads only as
//!   omni-mem `Parcel`s (a detached closed region and its root), so no
//!   two threads ever touch the same region;
//! * a spawned thread compiles the program's code itself, form by form
//!   when first called, with the spawner's procedure and global numbering
//!   (lazy_code.rs), and starts from a *copy* of the spawner's globals,
//!   handed over as one parcel;
//! * channels and threads are named by immediate handles into the tables
//!   below, so a handle crosses threads like a number.
//!
//! All channel and thread state of a program sits behind one mutex
//! (`Sched`). That keeps every operation a few instructions under the lock
//! and makes deadlock detection exact: `running` counts VM threads not
//! blocked, a waker moves the threads it wakes back into `running` itself
//! (before they are scheduled), so `running == 0` with anyone blocked
//! means no thread can ever make progress.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use omni_mem::{HeapStats, Parcel, TraceEvent};

use crate::vm::{LispError, VmStats};

/// Handle kinds (`Value::handle`).
pub const HANDLE_CHAN: u8 = 1;
pub const HANDLE_THREAD: u8 = 2;

/// The program's output stream, shared by all its threads. One write per
/// `display`/`println` call, so lines never interleave mid-line.
pub type SharedOut = Arc<Mutex<Box<dyn Write + Send>>>;

/// Why a blocking operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConcError {
    /// Every thread is blocked: nothing can ever wake this one.
    Deadlock,
    SendOnClosed,
    AlreadyClosed,
    AlreadyJoined,
    /// Not a handle of this program (cannot be forged, but checked anyway).
    Unknown,
}

impl ConcError {
    pub fn message(&self, op: &str) -> String {
        match self {
            ConcError::Deadlock => {
                format!("deadlock: every thread is blocked ({op} can never complete)")
            }
            ConcError::SendOnClosed => "send: channel is closed".into(),
            ConcError::AlreadyClosed => "close: channel is already closed".into(),
            ConcError::AlreadyJoined => "join: thread was already joined".into(),
            ConcError::Unknown => format!("{op}: unknown handle"),
        }
    }
}

/// Threads blocked on one condition. `gen` changes whenever the waiters
/// are woken, so a thread can tell a real wake-up from a spurious one.
struct WaitQueue {
    waiters: usize,
    gen: u64,
    cv: Arc<Condvar>,
}

impl WaitQueue {
    fn new() -> Self {
        WaitQueue {
            waiters: 0,
            gen: 0,
            cv: Arc::new(Condvar::new()),
        }
    }
}

struct Chan {
    /// 0: rendezvous (a send completes when a receiver took its message).
    cap: usize,
    queue: VecDeque<Parcel>,
    closed: bool,
    /// Messages ever enqueued / ever taken: a rendezvous sender waits for
    /// `taken` to pass its ticket.
    sent: u64,
    taken: u64,
    recvq: WaitQueue,
    sendq: WaitQueue,
}

/// What a finished thread left for `join`.
pub type Outcome = Result<Parcel, Box<LispError>>;

enum ThreadState {
    Running,
    /// Its outcome and the steps of the step budget it left unused, given
    /// back to whoever joins it (`Vm::set_fuel`; 0 without a budget).
    Done(Outcome, u64),
    Joined,
}

struct ThreadSlot {
    state: ThreadState,
    joinq: WaitQueue,
    /// Ends when the thread's job has ended and dropped what it held.
    os: Option<crate::worker_pool::JobHandle>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Queue {
    Recv(usize),
    Send(usize),
    Join(usize),
    AllDone,
}

struct Sched {
    chans: Vec<Chan>,
    threads: Vec<ThreadSlot>,
    /// Woken whenever any thread finishes (the exit wait of the main thread).
    doneq: WaitQueue,
    /// VM threads that are not blocked.
    running: usize,
    /// Threads registered in some wait queue.
    blocked: usize,
    /// Bumped when a deadlock is declared: every thread blocked before
    /// that fails; threads that block later start afresh.
    deadlock_epoch: u64,
    /// Statistics of finished threads, for `--stats`.
    child_vm: VmStats,
    child_heap: Vec<HeapStats>,
    /// Region event logs of finished threads (thread id, events), when the
    /// program is traced (`--trace-regions`).
    child_traces: Vec<(u32, Vec<TraceEvent>)>,
}

impl Sched {
    fn queue(&mut self, q: Queue) -> &mut WaitQueue {
        match q {
            Queue::Recv(c) => &mut self.chans[c].recvq,
            Queue::Send(c) => &mut self.chans[c].sendq,
            Queue::Join(t) => &mut self.threads[t].joinq,
            Queue::AllDone => &mut self.doneq,
        }
    }

    /// Wake every thread waiting in `q`, counting them as running now.
    fn wake(&mut self, q: Queue) {
        let wq = self.queue(q);
        let n = wq.waiters;
        if n == 0 {
            return;
        }
        wq.waiters = 0;
        wq.gen += 1;
        wq.cv.notify_all();
        self.blocked -= n;
        self.running += n;
    }

    fn declare_deadlock(&mut self) {
        self.deadlock_epoch += 1;
        let mut cvs: Vec<Arc<Condvar>> = vec![self.doneq.cv.clone()];
        for c in &self.chans {
            cvs.push(c.recvq.cv.clone());
            cvs.push(c.sendq.cv.clone());
        }
        for t in &self.threads {
            cvs.push(t.joinq.cv.clone());
        }
        for cv in cvs {
            cv.notify_all();
        }
    }
}

/// The shared state of one program's threads.
pub struct Runtime {
    sched: Mutex<Sched>,
    /// Every batch compiled so far, in order: a spawned thread compiles
    /// their forms again, when first needed, with the same procedure ids
    /// (lazy_code.rs).
    batches: Mutex<Vec<Arc<crate::lazy_code::Batch>>>,
    pub out: SharedOut,
    /// The program's input (`read-line`, `read-char`, ...).
    input: Mutex<crate::input::Input>,
    /// The status `(exit)` asked for, once a thread of the program called
    /// it (the first call wins): every thread of the program stops at its
    /// next call, and the program ends with this status.
    exit: Mutex<Option<u8>>,
}

impl Runtime {
    pub fn new(out: Box<dyn Write + Send>) -> Arc<Runtime> {
        Arc::new(Runtime {
            sched: Mutex::new(Sched {
                chans: Vec::new(),
                threads: Vec::new(),
                doneq: WaitQueue::new(),
                running: 1,
                blocked: 0,
                deadlock_epoch: 0,
                child_vm: VmStats::default(),
                child_heap: Vec::new(),
                child_traces: Vec::new(),
            }),
            batches: Mutex::new(Vec::new()),
            out: Arc::new(Mutex::new(out)),
            exit: Mutex::new(None),
            input: Mutex::new(crate::input::Input::new(crate::input::Source::Stdin)),
        })
    }

    /// Read the program's input from `source` (standard input until then).
    pub fn set_input(&self, source: crate::input::Source) {
        *self.input.lock().unwrap_or_else(|p| p.into_inner()) = crate::input::Input::new(source);
    }

    /// Run `f` on the program's input, under its lock.
    pub fn with_input<T>(&self, f: impl FnOnce(&mut crate::input::Input) -> T) -> T {
        f(&mut self.input.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// `(exit status)`: record the status (unless a thread asked first)
    /// and make every thread of the program stop at its next call.
    pub fn request_exit(&self, status: u8) {
        let mut e = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        if e.is_none() {
            *e = Some(status);
        }
        drop(e);
        crate::interrupt::wake();
    }

    /// The status a thread of the program asked to exit with, if any.
    pub fn exit_status(&self) -> Option<u8> {
        *self.exit.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, Sched> {
        // Every critical section leaves the tables consistent before it can
        // panic, so a poisoned lock is still usable.
        self.sched.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record_batch(&self, batch: crate::lazy_code::Batch) {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(batch));
    }

    pub(crate) fn batches(&self) -> Vec<Arc<crate::lazy_code::Batch>> {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Block the calling thread in `q` until it is woken. Fails with
    /// `Deadlock` if this leaves no thread running (or another thread
    /// found that while this one was blocked). With `always` (the exit
    /// wait), deadlock is declared but the wait goes on: the other threads
    /// fail and finish, which wakes it.
    fn block<'a>(
        &self,
        mut g: MutexGuard<'a, Sched>,
        q: Queue,
        always: bool,
    ) -> Result<MutexGuard<'a, Sched>, ConcError> {
        let epoch = g.deadlock_epoch;
        let (cv, gen) = {
            let wq = g.queue(q);
            wq.waiters += 1;
            (wq.cv.clone(), wq.gen)
        };
        g.blocked += 1;
        g.running -= 1;
        if g.running == 0 {
            g.declare_deadlock();
        }
        loop {
            if g.deadlock_epoch != epoch && !always {
                // Leave the queue as if woken, so the counts stay exact.
                let wq = g.queue(q);
                if wq.gen == gen {
                    wq.waiters -= 1;
                    g.blocked -= 1;
                    g.running += 1;
                }
                return Err(ConcError::Deadlock);
            }
            g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
            if g.queue(q).gen != gen {
                return Ok(g);
            }
        }
    }

    // -- channels ----------------------------------------------------------

    pub fn chan_new(&self, cap: usize) -> u32 {
        let mut g = self.lock();
        g.chans.push(Chan {
            cap,
            queue: VecDeque::new(),
            closed: false,
            sent: 0,
            taken: 0,
            recvq: WaitQueue::new(),
            sendq: WaitQueue::new(),
        });
        (g.chans.len() - 1) as u32
    }

    /// Enqueue `p`; waits for room (buffered) or for a receiver to take it
    /// (rendezvous). Sending on a closed channel fails (and drops `p`,
    /// which frees its region).
    pub fn send(&self, id: u32, p: Parcel) -> Result<(), ConcError> {
        let c = id as usize;
        let mut g = self.lock();
        if c >= g.chans.len() {
            return Err(ConcError::Unknown);
        }
        loop {
            let ch = &g.chans[c];
            if ch.closed {
                return Err(ConcError::SendOnClosed);
            }
            if ch.cap == 0 || ch.queue.len() < ch.cap {
                break;
            }
            g = self.block(g, Queue::Send(c), false)?;
        }
        let ch = &mut g.chans[c];
        ch.queue.push_back(p);
        ch.sent += 1;
        let ticket = ch.sent;
        let rendezvous = ch.cap == 0;
        g.wake(Queue::Recv(c));
        if rendezvous {
            // Wait until a receiver took this message (or the channel was
            // closed: the message stays receivable).
            while g.chans[c].taken < ticket && !g.chans[c].closed {
                g = self.block(g, Queue::Send(c), false)?;
            }
        }
        Ok(())
    }

    /// The next message, or `None` once the channel is closed and drained.
    pub fn recv(&self, id: u32) -> Result<Option<Parcel>, ConcError> {
        let c = id as usize;
        let mut g = self.lock();
        if c >= g.chans.len() {
            return Err(ConcError::Unknown);
        }
        loop {
            let ch = &mut g.chans[c];
            if let Some(p) = ch.queue.pop_front() {
                ch.taken += 1;
                g.wake(Queue::Send(c));
                return Ok(Some(p));
            }
            if ch.closed {
                return Ok(None);
            }
            g = self.block(g, Queue::Recv(c), false)?;
        }
    }

    pub fn close(&self, id: u32) -> Result<(), ConcError> {
        let c = id as usize;
        let mut g = self.lock();
        let ch = g.chans.get_mut(c).ok_or(ConcError::Unknown)?;
        if ch.closed {
            return Err(ConcError::AlreadyClosed);
        }
        ch.closed = true;
        g.wake(Queue::Recv(c));
        g.wake(Queue::Send(c));
        Ok(())
    }

    // -- threads -----------------------------------------------------------

    /// Register a thread that `start` will run; it counts as running from
    /// now on. `start` gets the thread's id and returns the handle of the
    /// job that runs it (`worker_pool`).
    pub fn spawn(
        &self,
        start: impl FnOnce(u32) -> std::io::Result<crate::worker_pool::JobHandle>,
    ) -> Result<u32, String> {
        let id = {
            let mut g = self.lock();
            g.threads.push(ThreadSlot {
                state: ThreadState::Running,
                joinq: WaitQueue::new(),
                os: None,
            });
            g.running += 1;
            (g.threads.len() - 1) as u32
        };
        match start(id) {
            Ok(h) => {
                self.lock().threads[id as usize].os = Some(h);
                Ok(id)
            }
            Err(e) => {
                let msg = format!("spawn: cannot start a thread: {e}");
                self.thread_done(
                    id,
                    Err(Box::new(LispError {
                        message: msg.clone(),
                        span: None,
                        trace: Vec::new(),
                    })),
                    0,
                );
                self.lock().threads[id as usize].state = ThreadState::Joined;
                Err(msg)
            }
        }
    }

    /// Called by a thread as its last act: store its outcome and the
    /// steps it did not use, and wake whoever waits for it.
    pub fn thread_done(&self, id: u32, outcome: Outcome, fuel_left: u64) {
        let t = id as usize;
        let mut g = self.lock();
        if let Some(slot) = g.threads.get_mut(t) {
            slot.state = ThreadState::Done(outcome, fuel_left);
        }
        g.wake(Queue::Join(t));
        g.wake(Queue::AllDone);
        g.running -= 1;
        if g.running == 0 && g.blocked > 0 {
            g.declare_deadlock();
        }
    }

    /// Fold a finished thread's statistics into the program's.
    pub fn thread_stats(&self, vm: VmStats, heap: HeapStats) {
        let mut g = self.lock();
        g.child_vm.add(&vm);
        g.child_heap.push(heap);
    }

    /// Keep a finished thread's region event log.
    pub fn thread_trace(&self, id: u32, events: Vec<TraceEvent>) {
        self.lock().child_traces.push((id, events));
    }

    /// Take the event logs of the threads that finished so far.
    pub fn take_traces(&self) -> Vec<(u32, Vec<TraceEvent>)> {
        std::mem::take(&mut self.lock().child_traces)
    }

    /// Statistics of every thread that finished so far.
    pub fn children_stats(&self) -> (VmStats, Vec<HeapStats>) {
        let g = self.lock();
        (g.child_vm, g.child_heap.clone())
    }

    /// Wait for thread `id` and take its outcome and the steps it left.
    pub fn join(&self, id: u32) -> Result<(Outcome, u64), ConcError> {
        let t = id as usize;
        let mut g = self.lock();
        if t >= g.threads.len() {
            return Err(ConcError::Unknown);
        }
        loop {
            match &g.threads[t].state {
                ThreadState::Done(..) => break,
                ThreadState::Joined => return Err(ConcError::AlreadyJoined),
                ThreadState::Running => g = self.block(g, Queue::Join(t), false)?,
            }
        }
        let slot = &mut g.threads[t];
        let os = slot.os.take();
        let state = std::mem::replace(&mut slot.state, ThreadState::Joined);
        drop(g);
        if let Some(h) = os {
            h.join();
        }
        match state {
            ThreadState::Done(o, fuel_left) => Ok((o, fuel_left)),
            _ => Err(ConcError::Unknown),
        }
    }

    /// The exit wait of the main thread: wait until every spawned thread has
    /// finished, then return the errors of those nobody joined (thread id,
    /// error). Unjoined results are freed here.
    pub fn finish(&self) -> Vec<(u32, Box<LispError>)> {
        let mut g = self.lock();
        while g
            .threads
            .iter()
            .any(|t| matches!(t.state, ThreadState::Running))
        {
            g = match self.block(g, Queue::AllDone, true) {
                Ok(g) => g,
                // `always` waits never fail; keep the lock discipline anyway.
                Err(_) => self.lock(),
            };
        }
        let mut errors = Vec::new();
        let mut handles = Vec::new();
        for (i, t) in g.threads.iter_mut().enumerate() {
            handles.extend(t.os.take());
            if let ThreadState::Done(Err(e), _) =
                std::mem::replace(&mut t.state, ThreadState::Joined)
            {
                errors.push((i as u32, e));
            }
        }
        drop(g);
        for h in handles {
            h.join();
        }
        errors
    }
}
