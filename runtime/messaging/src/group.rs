//! Group commit: the writes concurrent callers make go to the store together, one transaction a
//! batch, and each caller is answered its own outcome once the batch is committed.
//!
//! One writer task takes what is waiting (up to `max_batch`) and writes it while the next
//! callers queue, so a lone write waits for nothing and a burst costs one commit per batch
//! instead of one per write. On SQLite, which has a single writer, this also keeps writes from
//! meeting in its busy handler.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

/// Writes waiting for the writer before callers wait to queue theirs.
const QUEUE: usize = 8_192;

type Job<T, R> = (T, oneshot::Sender<R>);

/// Writes a batch, answering each item in order.
type WriteBatch<T, R> =
    dyn Fn(Vec<T>) -> std::pin::Pin<Box<dyn Future<Output = Vec<R>> + Send>> + Send + Sync;

/// Writes `T`s in batches through `write`, answering each caller its `R`.
pub struct GroupCommit<T, R> {
    max_batch: usize,
    write: Arc<WriteBatch<T, R>>,
    /// Started on the first write (so a value can be made outside a runtime).
    queue: OnceLock<mpsc::Sender<Job<T, R>>>,
}

impl<T, R> std::fmt::Debug for GroupCommit<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("max_batch", &self.max_batch).finish_non_exhaustive()
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// `write` writes a batch in one transaction and answers each of its items, in order.
    pub fn new<F, Fut>(max_batch: usize, write: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        Self {
            max_batch: max_batch.max(1),
            write: Arc::new(move |batch| Box::pin(write(batch))),
            queue: OnceLock::new(),
        }
    }

    fn queue(&self) -> &mpsc::Sender<Job<T, R>> {
        self.queue.get_or_init(|| {
            let (queue, mut jobs) = mpsc::channel::<Job<T, R>>(QUEUE);
            let (write, max_batch) = (self.write.clone(), self.max_batch);
            // Ends once this value (the only sender) is dropped and the queue is drained.
            tokio::spawn(async move {
                while let Some(first) = jobs.recv().await {
                    let mut batch = vec![first];
                    while batch.len() < max_batch {
                        match jobs.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let (items, callers): (Vec<T>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
                    for (caller, answer) in callers.into_iter().zip(write(items).await) {
                        let _ = caller.send(answer);
                    }
                }
            });
            queue
        })
    }

    /// Writes `item` with whatever else is waiting; `None` when the writer is gone (it
    /// panicked) or gave no answer for it.
    pub async fn write(&self, item: T) -> Option<R> {
        let (answer, answered) = oneshot::channel();
        self.queue().send((item, answer)).await.ok()?;
        answered.await.ok()
    }
}
