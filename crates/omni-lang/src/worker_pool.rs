//! The OS threads that run a program's spawned threads, kept for reuse.
//!
//! A VM thread has a 4 GiB stack (`VM_STACK_BYTES`); starting one and
//! ending it maps and unmaps that stack, which made `(join (spawn f))`
//! cost about half a millisecond, nearly all of it in the kernel. So a
//! thread that finished a job waits a while (`IDLE_WAIT`) for the next one
//! instead of ending, and `spawn` hands its job to such a thread when
//! there is one.
//!
//! The pool lives as long as a program: `drain` (at the program's end)
//! ends and joins the waiting workers.
//!
//! A job runs as it would on a fresh thread, except for what the thread
//! keeps in its own state between jobs: omni-mem's thread heap (its
//! pooled region blocks, trimmed to a few slabs after each job, and its
//! counters; `vm_conc::child_main` reports a job's own counts), the stack
//! size it was granted and the stack pages it touched. A job that did not
//! leave that state clean (it panicked, or left regions alive) ends its
//! thread instead of returning it to the pool, and so does a worker that
//! has lived `MAX_LIFE`.
//!
//! Invariant: a worker is in the pool exactly while nobody has taken it,
//! and it removes itself only under the pool's lock; so work sent to a
//! worker taken from the pool is always received.

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// A job: runs the spawned thread's body; true if it left the thread's
/// state clean, so the thread may run another.
pub type Job = Box<dyn FnOnce() -> bool + Send>;

/// A job and the sender its handle waits on (dropped, never sent on, once
/// the job has ended and its thread is back in the pool or ending).
type Work = (Job, mpsc::Sender<()>);

/// How long a worker waits for its next job before it ends.
const IDLE_WAIT: Duration = Duration::from_secs(2);

/// At most this many workers wait; more end when they finish.
const MAX_IDLE: usize = 64;

/// A worker that has lived this long ends after its current job, so what
/// its thread holds that only ending it gives back (the stack pages a
/// deep recursion touched) is held for a bounded time.
const MAX_LIFE: Duration = Duration::from_secs(10);

/// The waiting workers (each its id, to find itself, and its work
/// channel), the next id, and the workers' threads by id (some may have
/// ended by themselves: pruned when a worker starts).
struct Pool {
    idle: Vec<(u64, mpsc::Sender<Work>)>,
    next_id: u64,
    threads: Vec<(u64, std::thread::JoinHandle<()>)>,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    idle: Vec::new(),
    next_id: 0,
    threads: Vec::new(),
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // The pool stays consistent under a panic (pushes and removals only).
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until a job has ended and dropped everything it held, as
/// joining its OS thread would.
pub struct JobHandle(mpsc::Receiver<()>);

impl JobHandle {
    pub fn join(self) {
        // Nothing is ever sent: the wait ends when the sender is dropped.
        let _ = self.0.recv();
    }
}

/// Run `job` on a waiting worker, or on a new VM thread if none waits.
/// Errs only if no thread could be started.
pub fn run(job: Job) -> std::io::Result<JobHandle> {
    let (ended, handle) = mpsc::channel::<()>();
    let mut work: Work = (job, ended);
    let id = loop {
        let mut p = pool();
        let Some((_, worker)) = p.idle.pop() else {
            // None waits: a new worker, numbered under the same lock.
            p.next_id += 1;
            break p.next_id;
        };
        drop(p);
        match worker.send(work) {
            Ok(()) => return Ok(JobHandle(handle)),
            // Its thread is gone (it can only have died): try another.
            Err(mpsc::SendError(w)) => work = w,
        }
    };
    let thread = crate::spawn_vm_thread("omni-worker".into(), move || serve(id, work))?;
    let mut p = pool();
    p.threads.retain(|t| !t.1.is_finished());
    p.threads.push((id, thread));
    Ok(JobHandle(handle))
}

/// End every waiting worker and wait until their threads are gone: a
/// program's end (`finish_threads`), so that no thread of the program
/// outlives it. Workers running another program's threads are left alone.
pub fn drain() {
    let (idle, threads) = {
        let mut p = pool();
        let idle = std::mem::take(&mut p.idle);
        let (ending, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut p.threads)
            .into_iter()
            .partition(|t| idle.iter().any(|w| w.0 == t.0));
        p.threads = rest;
        (idle, ending)
    };
    // Dropping a waiting worker's channel ends its wait.
    drop(idle);
    for (_, t) in threads {
        let _ = t.join();
    }
}

/// A worker's life: run the work, then wait for more while clean. The
/// handle's wait ends after the worker is back in the pool, so a program
/// that joins a thread and spawns the next finds the worker waiting.
fn serve(id: u64, first: Work) {
    let born = std::time::Instant::now();
    let mut work = first;
    loop {
        let (job, ended) = work;
        // The job's captures are dropped when the call returns.
        let clean = job();
        let (tx, rx) = mpsc::channel();
        {
            let mut p = pool();
            if !clean || p.idle.len() >= MAX_IDLE || born.elapsed() >= MAX_LIFE {
                return;
            }
            p.idle.push((id, tx));
        }
        drop(ended);
        work = match rx.recv_timeout(IDLE_WAIT) {
            Ok(w) => w,
            Err(_) => {
                let mut p = pool();
                if let Some(i) = p.idle.iter().position(|w| w.0 == id) {
                    p.idle.swap_remove(i);
                    return;
                }
                drop(p);
                // Taken as the wait ended: its work is coming (or drained:
                // the channel is closed).
                match rx.recv() {
                    Ok(w) => w,
                    Err(_) => return,
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a job that ends `clean` (or not), wait for it, and return the
    /// thread it ran on.
    fn thread_of_job(clean: bool) -> std::thread::ThreadId {
        let (tx, rx) = mpsc::channel();
        run(Box::new(move || {
            let _ = tx.send(std::thread::current().id());
            clean
        }))
        .expect("a thread starts")
        .join();
        rx.recv().expect("the job ran")
    }

    #[test]
    fn jobs_run_and_their_handles_wait_for_them() {
        let (tx, rx) = mpsc::channel();
        let mut handles = Vec::new();
        for i in 0..20u32 {
            let tx = tx.clone();
            handles.push(run(Box::new(move || tx.send(i).is_ok())).expect("a thread starts"));
        }
        drop(tx);
        for h in handles {
            h.join();
        }
        let mut got: Vec<u32> = rx.iter().collect();
        got.sort_unstable();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn a_finished_worker_runs_the_next_job_on_the_same_thread() {
        // One job after another, each joined before the next: the worker
        // is back in the pool when its handle returns, so the next job
        // finds it (unless a test running alongside takes it first).
        let threads: Vec<_> = (0..30).map(|_| thread_of_job(true)).collect();
        let mut distinct = threads.clone();
        distinct.sort_by_key(|t| format!("{t:?}"));
        distinct.dedup();
        assert!(
            distinct.len() < threads.len() / 2,
            "30 jobs in turn ran on {} threads",
            distinct.len()
        );
    }

    #[test]
    fn drain_ends_the_waiting_workers_threads() {
        // A thread-local whose destructor reports the thread's end: after
        // `drain` returns, the worker that ran the job has ended (unless a
        // test running alongside took it first: try a few times).
        struct OnExit(mpsc::Sender<()>);
        impl Drop for OnExit {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        thread_local! {
            static ON_EXIT: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) };
        }
        let ended = (0..20).any(|_| {
            let (tx, rx) = mpsc::channel();
            run(Box::new(move || {
                ON_EXIT.with(|e| *e.borrow_mut() = Some(OnExit(tx)));
                true
            }))
            .expect("a thread starts")
            .join();
            drain();
            rx.try_recv().is_ok()
        });
        assert!(
            ended,
            "drain returns after the waiting worker's thread ended"
        );
    }

    #[test]
    fn a_job_that_is_not_clean_ends_its_thread() {
        let gone = thread_of_job(false);
        for _ in 0..20 {
            assert_ne!(
                thread_of_job(true),
                gone,
                "a thread left unclean is not reused"
            );
        }
    }
}
