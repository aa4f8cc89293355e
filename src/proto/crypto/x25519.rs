//! The X25519 seam: the handshake's two scalar multiplications per side (the public key, then the
//! shared secret) go through [`Dh`], so that a faster backend replaces the pure-Rust one by changing
//! the [`Backend`] alias alone, as the AEAD does in `aead/`.

use zeroize::Zeroizing;

/// Length of an X25519 public key on the wire.
pub const DH_LEN: usize = 32;

/// An X25519 secret key, good for one Diffie-Hellman.
pub(crate) trait Dh: Sized {
    /// The key for 32 secret bytes, clamped as RFC 7748 says.
    fn from_secret(secret: &[u8; DH_LEN]) -> Self;

    /// The public key: the secret times the base point.
    fn public(&self) -> [u8; DH_LEN];

    /// The shared secret with `their_public`, or `None` when it is all zeros: their key has low order
    /// and the result would not depend on our secret.
    fn agree(self, their_public: &[u8; DH_LEN]) -> Option<Zeroizing<[u8; DH_LEN]>>;
}

/// The backend the handshake uses: aws-lc's with the `aws-lc` feature, else the pure-Rust crate.
#[cfg(feature = "aws-lc")]
pub(crate) type Backend = AwsLc;
/// The backend the handshake uses: aws-lc's with the `aws-lc` feature, else the pure-Rust crate.
#[cfg(not(feature = "aws-lc"))]
pub(crate) type Backend = Dalek;

/// x25519-dalek (pure Rust). Its secret is zeroized on drop.
#[cfg_attr(feature = "aws-lc", allow(dead_code, reason = "the fallback; tests compare it with aws-lc"))]
pub(crate) struct Dalek(x25519_dalek::StaticSecret);

impl Dh for Dalek {
    fn from_secret(secret: &[u8; DH_LEN]) -> Self {
        Dalek(x25519_dalek::StaticSecret::from(*secret))
    }

    fn public(&self) -> [u8; DH_LEN] {
        x25519_dalek::PublicKey::from(&self.0).to_bytes()
    }

    fn agree(self, their_public: &[u8; DH_LEN]) -> Option<Zeroizing<[u8; DH_LEN]>> {
        let shared = self.0.diffie_hellman(&x25519_dalek::PublicKey::from(*their_public));
        shared.was_contributory().then(|| Zeroizing::new(shared.to_bytes()))
    }
}

/// aws-lc's X25519 (s2n-bignum's assembly): twice as fast as the pure-Rust crate on x86_64. aws-lc
/// keeps the key in its own heap, which it clears when freeing.
#[cfg(feature = "aws-lc")]
pub(crate) struct AwsLc(aws_lc_rs::agreement::PrivateKey);

#[cfg(feature = "aws-lc")]
impl Dh for AwsLc {
    fn from_secret(secret: &[u8; DH_LEN]) -> Self {
        let key = aws_lc_rs::agreement::PrivateKey::from_private_key(&aws_lc_rs::agreement::X25519, secret)
            .expect("any 32 bytes are an X25519 secret");
        AwsLc(key)
    }

    fn public(&self) -> [u8; DH_LEN] {
        let public = self.0.compute_public_key().expect("an X25519 key always has a public key");
        public.as_ref().try_into().expect("an X25519 public key is DH_LEN bytes")
    }

    fn agree(self, their_public: &[u8; DH_LEN]) -> Option<Zeroizing<[u8; DH_LEN]>> {
        use aws_lc_rs::agreement::{UnparsedPublicKey, X25519, agree};
        // aws-lc refuses an all-zero result; it fails for nothing else a peer can choose.
        agree(&self.0, UnparsedPublicKey::new(&X25519, their_public), (), |shared| {
            shared.try_into().map(Zeroizing::new).map_err(drop)
        })
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; DH_LEN] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// RFC 7748 section 6.1: Alice's and Bob's keys and their shared secret.
    fn rfc7748<B: Dh>() {
        let alice = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let bob = hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let alice_public = B::from_secret(&alice).public();
        let bob_public = B::from_secret(&bob).public();
        assert_eq!(alice_public, hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
        assert_eq!(bob_public, hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
        let shared = hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(*B::from_secret(&alice).agree(&bob_public).unwrap(), shared);
        assert_eq!(*B::from_secret(&bob).agree(&alice_public).unwrap(), shared);
    }

    /// A public key of order 1 or 2 gives an all-zero result, which must be refused.
    fn refuses_low_order<B: Dh>() {
        let secret = [0x42; DH_LEN];
        let mut one = [0u8; DH_LEN];
        one[0] = 1;
        for low in [[0u8; DH_LEN], one] {
            assert!(B::from_secret(&secret).agree(&low).is_none());
        }
    }

    #[test]
    fn dalek_matches_rfc7748_and_refuses_low_order_keys() {
        rfc7748::<Dalek>();
        refuses_low_order::<Dalek>();
    }

    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_matches_rfc7748_and_refuses_low_order_keys() {
        rfc7748::<AwsLc>();
        refuses_low_order::<AwsLc>();
    }

    /// Both backends must compute the same public keys and shared secrets, on any bytes.
    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_and_dalek_agree() {
        use proptest::prelude::*;
        proptest!(|(ours in any::<[u8; 32]>(), theirs in any::<[u8; 32]>())| {
            prop_assert_eq!(AwsLc::from_secret(&ours).public(), Dalek::from_secret(&ours).public());
            let their_public = Dalek::from_secret(&theirs).public();
            let a = AwsLc::from_secret(&ours).agree(&their_public);
            let b = Dalek::from_secret(&ours).agree(&their_public);
            prop_assert_eq!(a.as_deref(), b.as_deref());
            // Any 32 bytes as their key, not only a real public key: the same answer or the same refusal.
            let a = AwsLc::from_secret(&ours).agree(&theirs);
            let b = Dalek::from_secret(&ours).agree(&theirs);
            prop_assert_eq!(a.as_deref(), b.as_deref());
        });
    }
}
