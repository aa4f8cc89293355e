//! Parked connections (docs/PROTOCOL.md, 4.6): a connection whose handshake and key confirmation are
//! done before any client needs it, and whose responder contacts its target only once the initiator
//! puts it to use. Each phase is a type, as the handshake's are; none does I/O.
//!
//! ```text
//! initiator                                   responder
//! Spare   --- TYPE_PARK (key confirmation) --> ParkRequest -> accept -> Parked
//! Ready   <-- TYPE_PARK ----------------------
//! take    --- TYPE_DATA (any length) --------> wake: Used    (now it contacts the target)
//! retire  --- TYPE_END ----------------------> wake: Retired (it answers TYPE_END, no target)
//!         <-- TYPE_END ---------------------- retire         (its time or room is up)
//! ```

use core::fmt;

use super::ProtoError;
use super::record::{First, Transport};
use crate::proto::{Open, Record, RecordError, Seal};

/// The initiator's parked connection before the responder has accepted it.
pub struct Spare {
    transport: Transport,
}

/// What the responder's first record on a [`Spare`] said.
#[derive(Debug)]
pub enum Accepted {
    /// The buffer does not yet hold the whole record: read more and call again.
    NeedMore(Spare),
    /// The responder parked the connection.
    Ready {
        /// The parked connection, ready to be put to use.
        ready: Ready,
        /// How many bytes of the buffer the record took.
        consumed: usize,
    },
    /// The responder refused to park it (it holds as many as it allows, or is stopping) with its end
    /// of stream: the connection is over, and nothing reached its target.
    Refused,
}

impl Spare {
    pub(crate) fn new(transport: Transport) -> Self {
        Spare { transport }
    }

    /// Opens the responder's first record from the start of `buf`.
    ///
    /// # Errors
    /// Any record error, and [`RecordError::MisplacedPark`] if the responder sent data: a responder
    /// sends nothing on a parked connection but its park record or its end of stream.
    pub fn accepted(mut self, buf: &mut [u8]) -> Result<Accepted, ProtoError> {
        match self.transport.opener_mut().open_as(buf, true)? {
            None => Ok(Accepted::NeedMore(self)),
            Some((First::Park, consumed)) => {
                Ok(Accepted::Ready { ready: Ready { transport: self.transport }, consumed })
            }
            Some((First::Record(Record::End), _)) => Ok(Accepted::Refused),
            Some((First::Record(Record::Data(_)), _)) => Err(RecordError::MisplacedPark.into()),
        }
    }
}

/// A connection parked at both ends, waiting for a client.
pub struct Ready {
    transport: Transport,
}

/// What the responder sent on a [`Ready`] connection.
#[derive(Debug)]
pub enum Waiting {
    /// Nothing whole yet.
    NeedMore(Ready),
    /// Its end of stream: it retired the connection, which must not be put to use. The initiator closes
    /// it; it need not answer (docs/PROTOCOL.md 4.6), so no state is kept to seal an answer with.
    Retired,
}

impl Ready {
    /// Puts the connection to use: appends to `out` the data record that tells the responder to
    /// contact its target (empty: the client's own bytes follow in records of their own), and returns
    /// both directions, as an unparked connection has them after its key confirmation.
    ///
    /// # Errors
    /// A sealing error (never on a fresh connection).
    pub fn take(mut self, out: &mut Vec<u8>) -> Result<Transport, ProtoError> {
        self.transport.sealer_mut().seal_data(&[], out)?;
        Ok(self.transport)
    }

    /// Retires the connection unused: appends this end's end of stream to `out`.
    ///
    /// # Errors
    /// A sealing error (never on a fresh connection).
    pub fn retire(mut self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        self.transport.sealer_mut().seal_end(out)?;
        Ok(())
    }

    /// Opens what the responder sent while the connection is parked: only its end of stream may come.
    ///
    /// # Errors
    /// Any record error; [`RecordError::MisplacedPark`] for data.
    pub fn waiting(mut self, buf: &mut [u8]) -> Result<Waiting, ProtoError> {
        match self.transport.opener_mut().open(buf)? {
            None => Ok(Waiting::NeedMore(self)),
            Some(opened) if opened.record == Record::End => Ok(Waiting::Retired),
            Some(_) => Err(RecordError::MisplacedPark.into()),
        }
    }
}

/// The responder's side: an authenticated initiator asked to park the connection.
pub struct ParkRequest {
    transport: Transport,
}

impl ParkRequest {
    pub(crate) fn new(transport: Transport) -> Self {
        ParkRequest { transport }
    }

    /// Parks the connection: appends this end's park record to `out`.
    ///
    /// # Errors
    /// A sealing error (never on a fresh connection).
    pub fn accept(mut self, out: &mut Vec<u8>) -> Result<Parked, ProtoError> {
        self.transport.sealer_mut().seal_park(out)?;
        Ok(Parked { transport: self.transport })
    }

    /// Refuses to park it (no room, or stopping): appends this end's end of stream to `out`. The
    /// connection is over once it is sent; nothing reaches the target.
    ///
    /// # Errors
    /// A sealing error (never on a fresh connection).
    pub fn refuse(mut self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        self.transport.sealer_mut().seal_end(out)?;
        Ok(())
    }
}

/// The responder's parked connection: its target is not contacted until the initiator puts it to use.
pub struct Parked {
    transport: Transport,
}

/// What the initiator sent on a [`Parked`] connection.
#[derive(Debug)]
pub enum Wake<'a> {
    /// Nothing whole yet.
    NeedMore(Parked),
    /// It put the connection to use: contact the target now; the record's data (often empty) is the
    /// first of the stream, and the connection goes on as any other.
    Used {
        /// Both directions.
        transport: Transport,
        /// The record's data, decrypted in place.
        data: &'a [u8],
        /// How many bytes of the buffer the record took.
        consumed: usize,
    },
    /// It retired the connection: answer with [`Retired::end`] and close; nothing reaches the target.
    Retired(Retired),
}

impl Parked {
    /// Opens the initiator's next record from the start of `buf`.
    ///
    /// # Errors
    /// Any record error.
    pub fn wake(mut self, buf: &mut [u8]) -> Result<Wake<'_>, ProtoError> {
        let Some(opened) = self.transport.opener_mut().open(buf)? else { return Ok(Wake::NeedMore(self)) };
        Ok(match opened.record {
            Record::Data(data) => Wake::Used { transport: self.transport, data, consumed: opened.consumed },
            Record::End => Wake::Retired(Retired { transport: self.transport }),
        })
    }

    /// Retires the connection unused (its time or the room for parked connections is up, or this end is
    /// stopping): appends this end's end of stream to `out`. The initiator answers with its own; if
    /// it put the connection to use meanwhile, its data must be refused ([`Retiring::closing`]).
    ///
    /// # Errors
    /// A sealing error (never on a fresh connection).
    pub fn retire(mut self, out: &mut Vec<u8>) -> Result<Retiring, ProtoError> {
        self.transport.sealer_mut().seal_end(out)?;
        Ok(Retiring { transport: self.transport })
    }
}

/// A parked connection the initiator retired, owed this end's end of stream.
pub struct Retired {
    transport: Transport,
}

impl Retired {
    /// Appends this end's end of stream to `out`: the last thing sent on the connection.
    ///
    /// # Errors
    /// A sealing error (never on a fresh connection).
    pub fn end(mut self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        self.transport.sealer_mut().seal_end(out)?;
        Ok(())
    }
}

/// A parked connection this end retired, waiting for the initiator's end of stream.
pub struct Retiring {
    transport: Transport,
}

/// What the initiator sent after this end retired a parked connection.
#[derive(Debug)]
pub enum Closing {
    /// Nothing whole yet.
    NeedMore(Retiring),
    /// Its end of stream: the connection ended cleanly, unused.
    Ended,
}

impl Retiring {
    /// Opens the initiator's next record from the start of `buf`.
    ///
    /// # Errors
    /// Any record error, and [`ProtoError::PutToUseAfterRetired`] for data: the initiator put the
    /// connection to use as this end's end of stream crossed it, and the connection must be reset
    /// (its bytes are lost with it, never delivered).
    pub fn closing(mut self, buf: &mut [u8]) -> Result<Closing, ProtoError> {
        match self.transport.opener_mut().open(buf)? {
            None => Ok(Closing::NeedMore(self)),
            Some(opened) if opened.record == Record::End => Ok(Closing::Ended),
            Some(_) => Err(ProtoError::PutToUseAfterRetired),
        }
    }
}

macro_rules! opaque_debug {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    )*};
}

// Their keys stay out of logs.
opaque_debug!(Spare, Ready, ParkRequest, Parked, Retired, Retiring);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Psk;
    use crate::proto::native::{Confirm, EphemeralKey, Initiator, ProtoError, Responder};

    /// A handshake whose initiator asks to park: its spare, and the responder's request.
    fn parking() -> (Spare, ParkRequest) {
        let psk = Psk::from_key_file(b"park");
        let (initiator, hello) = Initiator::start(&psk, EphemeralKey::from_bytes([1; 32]));
        let (unconfirmed, msg2, _) =
            Responder::accept(&[psk], &hello, EphemeralKey::from_bytes([2; 32])).unwrap();
        let mut wire = Vec::new();
        let spare = initiator.read_response_parked(&msg2, &mut wire).unwrap();
        let Confirm::Park { request, consumed } = unconfirmed.confirm(&mut wire).unwrap() else {
            panic!("a park record confirms the key and asks to park")
        };
        assert_eq!(consumed, wire.len());
        (spare, request)
    }

    /// Both ends parked: the initiator's ready connection and the responder's parked one.
    fn both_parked() -> (Ready, Parked) {
        let (spare, request) = parking();
        let mut wire = Vec::new();
        let parked = request.accept(&mut wire).unwrap();
        let Accepted::Ready { ready, consumed } = spare.accepted(&mut wire).unwrap() else {
            panic!("parked")
        };
        assert_eq!(consumed, wire.len());
        (ready, parked)
    }

    #[test]
    fn a_parked_connection_put_to_use_carries_data_both_ways() {
        let (ready, parked) = both_parked();
        let mut wire = Vec::new();
        let initiator = ready.take(&mut wire).unwrap();
        let (mut i_tx, mut i_rx) = initiator.split();
        i_tx.seal_data(b"PING", &mut wire).unwrap();
        let Wake::Used { transport, data, consumed } = parked.wake(&mut wire).unwrap() else {
            panic!("used")
        };
        assert_eq!(data, b"", "the record that puts it to use is empty; the client's bytes follow");
        let (mut r_tx, mut r_rx) = transport.split();
        let opened = r_rx.open(&mut wire[consumed..]).unwrap().unwrap();
        assert_eq!(opened.record, Record::Data(b"PING"));
        let mut back = Vec::new();
        r_tx.seal_data(b"PONG", &mut back).unwrap();
        assert_eq!(i_rx.open(&mut back).unwrap().unwrap().record, Record::Data(b"PONG"));
    }

    #[test]
    fn a_spare_retired_by_the_initiator_ends_with_both_ends_of_stream() {
        let (ready, parked) = both_parked();
        let mut wire = Vec::new();
        ready.retire(&mut wire).unwrap();
        let Wake::Retired(retired) = parked.wake(&mut wire).unwrap() else { panic!("retired") };
        retired.end(&mut Vec::new()).unwrap();
    }

    #[test]
    fn a_connection_retired_by_the_responder_ends_cleanly_or_refuses_data_that_crossed_its_end() {
        // The initiator sees the end while the connection waits, and answers with its own.
        let (ready, parked) = both_parked();
        let mut end = Vec::new();
        let retiring = parked.retire(&mut end).unwrap();
        let Waiting::Retired = ready.waiting(&mut end).unwrap() else { panic!("retired") };
        let (ready, parked) = both_parked();
        let retiring_answered = parked.retire(&mut Vec::new()).unwrap();
        let mut answer = Vec::new();
        ready.retire(&mut answer).unwrap();
        assert!(matches!(retiring_answered.closing(&mut answer).unwrap(), Closing::Ended));
        drop(retiring);

        // Had the initiator put it to use as the end crossed, its data is refused, never delivered.
        let (ready, parked) = both_parked();
        let retiring = parked.retire(&mut Vec::new()).unwrap();
        let mut late = Vec::new();
        ready.take(&mut late).unwrap();
        assert_eq!(retiring.closing(&mut late).unwrap_err(), ProtoError::PutToUseAfterRetired);
    }

    #[test]
    fn a_refused_park_reaches_the_initiator_as_a_refusal() {
        let (spare, request) = parking();
        let mut wire = Vec::new();
        request.refuse(&mut wire).unwrap();
        assert!(matches!(spare.accepted(&mut wire).unwrap(), Accepted::Refused));
    }

    #[test]
    fn a_park_record_anywhere_but_first_is_refused() {
        // The responder sends data where only its park record may come.
        let (spare, mut request) = parking();
        let mut wire = Vec::new();
        request.transport.sealer_mut().seal_data(b"early", &mut wire).unwrap();
        assert_eq!(spare.accepted(&mut wire).unwrap_err(), ProtoError::Record(RecordError::MisplacedPark));

        // A second park record from the initiator, once parked.
        let (mut ready, parked) = both_parked();
        let mut wire = Vec::new();
        ready.transport.sealer_mut().seal_park(&mut wire).unwrap();
        assert_eq!(parked.wake(&mut wire).unwrap_err(), ProtoError::Record(RecordError::MisplacedPark));
    }

    #[test]
    fn each_phase_waits_for_a_whole_record() {
        let (spare, request) = parking();
        let mut wire = Vec::new();
        let parked = request.accept(&mut wire).unwrap();
        let partial = wire.len() - 1;
        let Accepted::NeedMore(spare) = spare.accepted(&mut wire[..partial]).unwrap() else {
            panic!("a partial record is not enough")
        };
        let Accepted::Ready { ready, .. } = spare.accepted(&mut wire).unwrap() else { panic!("ready") };
        let mut go = Vec::new();
        ready.take(&mut go).unwrap();
        let Wake::NeedMore(parked) = parked.wake(&mut go[..1]).unwrap() else { panic!("partial") };
        assert!(matches!(parked.wake(&mut go).unwrap(), Wake::Used { .. }));
    }
}
