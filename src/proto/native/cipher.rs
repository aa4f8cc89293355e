//! Noise's CipherState: one key and the counter that numbers the messages sealed or opened with it.

use crate::proto::RecordError;
use crate::proto::crypto::aead::{Aead, Backend, KEY_LEN, TAG_LEN};

/// Noise message counter. Starts at 0; `u64::MAX` is reserved by Noise, so the counter refuses to
/// hand it out and can never wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counter(u64);

impl Counter {
    /// Returns the next counter value and advances past it.
    ///
    /// # Errors
    /// [`RecordError::CounterExhausted`] once 2^64 - 1 values have been used.
    pub(crate) fn next(&mut self) -> Result<u64, RecordError> {
        let n = self.0;
        if n == u64::MAX {
            return Err(RecordError::CounterExhausted);
        }
        self.0 = n + 1;
        Ok(n)
    }

    #[cfg(test)]
    pub(crate) fn starting_at(n: u64) -> Self {
        Counter(n)
    }
}

/// A key with its counter. The key lives inside the AEAD backend, which zeroizes it on drop.
pub(crate) struct CipherState {
    aead: Backend,
    counter: Counter,
}

impl CipherState {
    /// A fresh cipher state: `InitializeKey(key)`, counter 0.
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Self {
        CipherState { aead: Backend::new(key), counter: Counter::default() }
    }

    /// `EncryptWithAd`: encrypts `buf` in place and returns its tag.
    pub(crate) fn seal(&mut self, ad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN], RecordError> {
        let n = self.counter.next()?;
        Ok(self.aead.seal_in_place(n, ad, buf))
    }

    /// `DecryptWithAd`: checks the tag, then decrypts `buf` in place. A failure consumes the counter
    /// value too; the protocol treats every failure as fatal, so the state is not used again.
    pub(crate) fn open(&mut self, ad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), RecordError> {
        let n = self.counter.next()?;
        self.aead.open_in_place(n, ad, buf, tag).map_err(|()| RecordError::Auth)
    }

    /// The counter value the next message will use.
    pub(crate) fn counter(&self) -> Counter {
        self.counter
    }

    #[cfg(test)]
    pub(crate) fn set_counter(&mut self, counter: Counter) {
        self.counter = counter;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_stops_before_the_reserved_value() {
        let mut c = Counter::starting_at(u64::MAX - 2);
        assert_eq!(c.next(), Ok(u64::MAX - 2));
        assert_eq!(c.next(), Ok(u64::MAX - 1));
        assert_eq!(c.next(), Err(RecordError::CounterExhausted));
        assert_eq!(c.next(), Err(RecordError::CounterExhausted), "stays exhausted");
    }

    #[test]
    fn sealing_advances_the_counter_so_a_replayed_message_fails() {
        let mut tx = CipherState::new(&[1; KEY_LEN]);
        let mut rx = CipherState::new(&[1; KEY_LEN]);
        let mut first = *b"one";
        let tag1 = tx.seal(b"", &mut first).unwrap();
        let mut second = *b"two";
        let tag2 = tx.seal(b"", &mut second).unwrap();
        assert_ne!(first, second);
        let mut replay = first;
        rx.open(b"", &mut first, &tag1).unwrap();
        assert_eq!(rx.open(b"", &mut replay, &tag1), Err(RecordError::Auth));
        let _ = tag2;
    }
}
