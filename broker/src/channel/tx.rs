//! `tx.*` and `confirm.select`. In a transaction, publishes and acks are held until commit
//! and dropped on rollback. A channel is in at most one of the two modes.
//!
//! `tx.commit-ok` means the committed persistent messages are on disk, as in RabbitMQ, whose
//! transactions wait for the same confirms as `confirm.select`. A commit that wrote to a queue
//! log asks for the connection's end-of-turn fsync (`SyncRequest`) and becomes a
//! [`PendingCommit`] until `on_synced` reports that fsync. While it waits, any method on the
//! channel is RabbitMQ's connection error `504 CHANNEL_ERROR - unexpected command while
//! processing 'tx.commit'` (the client must wait for commit-ok), so no reply can overtake the
//! commit-ok; deliveries to the channel's consumers still flow, as in RabbitMQ. If the fsync
//! fails, or a publish of the commit was refused (a failed store, `x-overflow =
//! reject-publish`), the reply is RabbitMQ's channel close `406 PRECONDITION_FAILED - partial
//! tx completion` instead of commit-ok.

use super::{Channel, Confirms, Ctx};
use crate::error::{AmqpException, ChannelException};
use crate::protocol::{AMQPClass, Assembled, Outbox, confirm, tx};
use crate::queue::PublishOutcome;

/// An ack, nack or reject held by a transaction.
#[derive(Debug)]
pub struct PendingAck {
    pub tag: u64,
    pub multiple: bool,
    /// `None` for an ack; `Some(requeue)` for nack/reject.
    pub requeue: Option<bool>,
}

/// What a transaction holds until commit.
#[derive(Debug, Default)]
pub struct TxState {
    pub publishes: Vec<Assembled>,
    pub acks: Vec<PendingAck>,
}

/// A `tx.commit` whose reply waits for the fsync that makes its messages durable.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingCommit {
    /// The `SyncRequest` generation covering its log writes.
    generation: u64,
    /// A publish of it was refused: the answer is `406 partial tx completion`.
    failed: bool,
}

impl Channel {
    pub(super) fn on_confirm_select(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: confirm::Select,
    ) -> Result<(), AmqpException> {
        if self.tx.is_some() {
            return Err(ChannelException::precondition_failed(
                "cannot switch from tx to confirm mode",
            )
            .into());
        }
        if self.confirms.is_none() {
            self.confirms = Some(Confirms::default());
        }
        self.reply(
            ctx,
            m.nowait,
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
        );
        Ok(())
    }

    pub(super) fn on_tx_select(&mut self, ctx: &mut Ctx<'_>) -> Result<(), AmqpException> {
        if self.confirms.is_some() {
            return Err(ChannelException::precondition_failed(
                "cannot switch from confirm to tx mode",
            )
            .into());
        }
        if self.tx.is_none() {
            self.tx = Some(TxState::default());
        }
        ctx.out.method(
            self.id,
            &AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
        );
        Ok(())
    }

    pub(super) fn on_tx_commit(&mut self, ctx: &mut Ctx<'_>) -> Result<(), AmqpException> {
        let Some(state) = self.tx.replace(TxState::default()) else {
            return Err(
                ChannelException::precondition_failed("channel is not transactional").into(),
            );
        };
        // Leave tx mode while applying so the handlers act instead of holding.
        let held = self.tx.take();
        let result = (|| {
            let (mut persisted, mut failed) = (false, false);
            for m in state.publishes {
                match self.publish_now(ctx, m)? {
                    PublishOutcome::Enqueued => {}
                    PublishOutcome::Persisted => persisted = true,
                    PublishOutcome::Rejected => failed = true,
                }
            }
            for a in state.acks {
                match a.requeue {
                    None => self.on_basic_ack(ctx, a.tag, a.multiple)?,
                    Some(r) => self.on_basic_nack(ctx, a.tag, a.multiple, r)?,
                }
            }
            Ok::<_, AmqpException>((persisted, failed))
        })();
        self.tx = held;
        let (persisted, failed) = result?;
        if persisted {
            // Answered once the fsync requested at the end of this turn completes.
            ctx.sync.wanted = true;
            self.committing = Some(PendingCommit {
                generation: ctx.sync.generation,
                failed,
            });
            return Ok(());
        }
        if failed {
            return Err(partial_tx_completion().into());
        }
        send_commit_ok(self.id, ctx.out);
        Ok(())
    }

    /// Answers a commit that waited for fsyncs up to `generation` (`ok` if they succeeded).
    pub(super) fn finish_commit(&mut self, ctx: &mut Ctx<'_>, generation: u64, ok: bool) {
        let Some(commit) = self.committing else {
            return;
        };
        if commit.generation > generation {
            return;
        }
        self.committing = None;
        if ok && !commit.failed {
            send_commit_ok(self.id, ctx.out);
        } else {
            let e = partial_tx_completion();
            self.close_with(ctx, e.code, &e.text, e.class_method);
        }
    }

    pub(super) fn on_tx_rollback(&mut self, ctx: &mut Ctx<'_>) -> Result<(), AmqpException> {
        if self.tx.is_none() {
            return Err(
                ChannelException::precondition_failed("channel is not transactional").into(),
            );
        }
        self.tx = Some(TxState::default());
        ctx.out.method(
            self.id,
            &AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
        );
        Ok(())
    }
}

fn send_commit_ok(channel: u16, out: &mut Outbox) {
    out.method(
        channel,
        &AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
    );
}

/// RabbitMQ's answer when a publish of a committing transaction was not accepted
/// (`rabbit_channel:complete_tx/1`).
fn partial_tx_completion() -> ChannelException {
    ChannelException::precondition_failed("partial tx completion").caused_by((90, 20))
}
