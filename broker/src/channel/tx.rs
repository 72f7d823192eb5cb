//! `tx.*` and `confirm.select`. In a transaction, publishes and acks are held until commit
//! and dropped on rollback. A channel is in at most one of the two modes.

use super::{Channel, Confirms, Ctx};
use crate::error::{AmqpException, ChannelException};
use crate::protocol::{AMQPClass, Assembled, confirm, tx};

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
            for m in state.publishes {
                self.publish_now(ctx, m)?;
            }
            for a in state.acks {
                match a.requeue {
                    None => self.on_basic_ack(ctx, a.tag, a.multiple)?,
                    Some(r) => self.on_basic_nack(ctx, a.tag, a.multiple, r)?,
                }
            }
            Ok::<(), AmqpException>(())
        })();
        self.tx = held;
        result?;
        ctx.out.method(
            self.id,
            &AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
        );
        Ok(())
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
