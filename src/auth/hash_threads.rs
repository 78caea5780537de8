//! The threads that run bcrypt: dedicated, and at a low CPU priority.
//!
//! A bcrypt verify is a quarter of a second of pure computation. On Tokio's
//! shared blocking pool it ran at the same priority as the async executor,
//! and where both share a core (a small container, or a box busy with
//! logins) the kernel gave each half the core in turns of several
//! milliseconds: a `me` that needs microseconds waited behind a hash.
//! These threads lower their own priority (nice 19) when they start, so the
//! executor runs first whenever it has work and hashing takes the rest.
//! Raising a thread's priority back needs privileges, which is why the
//! threads are Warden's own rather than borrowed from Tokio's pool.

use std::{
    fmt,
    sync::{mpsc, Arc, Mutex},
};

use thread_priority::{set_current_thread_priority, ThreadPriority};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of low-priority threads; they stop when the last handle goes.
#[derive(Clone)]
pub struct HashThreads {
    jobs: mpsc::Sender<Job>,
}

impl fmt::Debug for HashThreads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashThreads").finish_non_exhaustive()
    }
}

/// The threads could not take the job (they failed to start or stopped).
#[derive(Debug, thiserror::Error)]
#[error("the password hashing threads are not running")]
pub struct Stopped;

impl HashThreads {
    /// Starts `count` threads (at least one).
    pub fn start(count: usize) -> Result<Self, std::io::Error> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..count.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("warden-hash-{n}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Self { jobs })
    }

    /// Runs `job` on one of the threads and waits for its result.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Stopped>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                // The caller may have gone (a dropped request); fine.
                let _ = reply.send(job());
            }))
            .map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}

fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    if let Err(err) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(error = %err, "could not lower the priority of a hashing thread");
    }
    loop {
        // Held only while taking a job, never while running one.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_named_low_priority_threads() {
        let threads = HashThreads::start(2).expect("threads start");
        let (name, stat) = threads
            .run(|| {
                (
                    std::thread::current().name().map(str::to_owned),
                    std::fs::read_to_string("/proc/thread-self/stat"),
                )
            })
            .await
            .expect("the job runs");
        assert!(name.is_some_and(|n| n.starts_with("warden-hash-")));
        // Field 19 of /proc/<tid>/stat is the niceness (Linux only).
        if let Ok(stat) = stat {
            let after_name = stat.rsplit(") ").next().expect("stat has a name");
            let nice = after_name
                .split(' ')
                .nth(16)
                .expect("stat has a nice field");
            assert_eq!(nice, "19", "{stat}");
        }
    }

    #[tokio::test]
    async fn every_job_gets_its_own_result() {
        let threads = HashThreads::start(3).expect("threads start");
        let results =
            futures::future::join_all((0..32u64).map(|n| threads.run(move || n * n))).await;
        for (n, result) in results.into_iter().enumerate() {
            assert_eq!(result.expect("the job runs"), (n * n) as u64);
        }
    }
}
