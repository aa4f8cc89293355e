//! RFC 3526 group 14 (the 2048-bit MODP group, generator 2), as classic spiped uses it: the
//! exponentiation behind its Diffie-Hellman, and the checks a peer's public value must pass.
//!
//! classic spiped's private exponent is `2^258 + x` for 32 random bytes `x` (libcperciva's
//! `crypto_dh`), so its public value is `2^(2^258 + x) mod p` and its shared secret
//! `y_peer^(2^258 + x) mod p`, each 256 bytes big-endian. A backend is swapped by changing the
//! [`Backend`] alias alone; every backend is constant-time in the exponent:
//!
//! | backend | feature | constant time because |
//! |---|---|---|
//! | `OpenSsl` | `openssl` (default) | the exponent carries `BN_FLG_CONSTTIME`, which sends `BN_mod_exp` to `BN_mod_exp_mont_consttime` |
//! | `CryptoBigint` | without `openssl` | `crypto-bigint`'s fixed-window `pow_bounded_exp`, table looked up in constant time, over a fixed 259 bits |
//!
//! aws-lc-rs exposes no big-number arithmetic, so it has no backend here.

use zeroize::{Zeroize, Zeroizing};

/// Length of a group element (a public value or a shared secret) on the wire: 2048 bits.
pub(crate) const ELEMENT_LEN: usize = 256;
/// Length of the random part `x` of the private exponent.
pub(crate) const PRIVATE_LEN: usize = 32;
/// Length of the exponent `2^258 + x`, big-endian: one byte above `x`'s 32.
const EXPONENT_LEN: usize = PRIVATE_LEN + 1;
/// The exponent's bit length, `2^258`'s bit included: the same for every `x`.
#[cfg_attr(feature = "openssl", allow(dead_code, reason = "crypto-bigint's bound; tests use it"))]
const EXPONENT_BITS: u32 = 259;

/// The group's prime p, big-endian (RFC 3526, section 3).
pub(crate) const P: [u8; ELEMENT_LEN] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc9, 0x0f, 0xda, 0xa2, 0x21, 0x68, 0xc2, 0x34, 0xc4,
    0xc6, 0x62, 0x8b, 0x80, 0xdc, 0x1c, 0xd1, 0x29, 0x02, 0x4e, 0x08, 0x8a, 0x67, 0xcc, 0x74, 0x02, 0x0b,
    0xbe, 0xa6, 0x3b, 0x13, 0x9b, 0x22, 0x51, 0x4a, 0x08, 0x79, 0x8e, 0x34, 0x04, 0xdd, 0xef, 0x95, 0x19,
    0xb3, 0xcd, 0x3a, 0x43, 0x1b, 0x30, 0x2b, 0x0a, 0x6d, 0xf2, 0x5f, 0x14, 0x37, 0x4f, 0xe1, 0x35, 0x6d,
    0x6d, 0x51, 0xc2, 0x45, 0xe4, 0x85, 0xb5, 0x76, 0x62, 0x5e, 0x7e, 0xc6, 0xf4, 0x4c, 0x42, 0xe9, 0xa6,
    0x37, 0xed, 0x6b, 0x0b, 0xff, 0x5c, 0xb6, 0xf4, 0x06, 0xb7, 0xed, 0xee, 0x38, 0x6b, 0xfb, 0x5a, 0x89,
    0x9f, 0xa5, 0xae, 0x9f, 0x24, 0x11, 0x7c, 0x4b, 0x1f, 0xe6, 0x49, 0x28, 0x66, 0x51, 0xec, 0xe4, 0x5b,
    0x3d, 0xc2, 0x00, 0x7c, 0xb8, 0xa1, 0x63, 0xbf, 0x05, 0x98, 0xda, 0x48, 0x36, 0x1c, 0x55, 0xd3, 0x9a,
    0x69, 0x16, 0x3f, 0xa8, 0xfd, 0x24, 0xcf, 0x5f, 0x83, 0x65, 0x5d, 0x23, 0xdc, 0xa3, 0xad, 0x96, 0x1c,
    0x62, 0xf3, 0x56, 0x20, 0x85, 0x52, 0xbb, 0x9e, 0xd5, 0x29, 0x07, 0x70, 0x96, 0x96, 0x6d, 0x67, 0x0c,
    0x35, 0x4e, 0x4a, 0xbc, 0x98, 0x04, 0xf1, 0x74, 0x6c, 0x08, 0xca, 0x18, 0x21, 0x7c, 0x32, 0x90, 0x5e,
    0x46, 0x2e, 0x36, 0xce, 0x3b, 0xe3, 0x9e, 0x77, 0x2c, 0x18, 0x0e, 0x86, 0x03, 0x9b, 0x27, 0x83, 0xa2,
    0xec, 0x07, 0xa2, 0x8f, 0xb5, 0xc5, 0x5d, 0xf0, 0x6f, 0x4c, 0x52, 0xc9, 0xde, 0x2b, 0xcb, 0xf6, 0x95,
    0x58, 0x17, 0x18, 0x39, 0x95, 0x49, 0x7c, 0xea, 0x95, 0x6a, 0xe5, 0x15, 0xd2, 0x26, 0x18, 0x98, 0xfa,
    0x05, 0x10, 0x15, 0x72, 0x8e, 0x5a, 0x8a, 0xac, 0xaa, 0x68, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff,
];

/// The same prime in hexadecimal, for crypto-bigint's compile-time Montgomery parameters.
#[cfg_attr(feature = "openssl", allow(dead_code, reason = "crypto-bigint's modulus; tests use it"))]
const P_HEX: &str = concat!(
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74",
    "020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f1437",
    "4fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed",
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf05",
    "98da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb",
    "9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b",
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf695581718",
    "3995497cea956ae515d2261898fa051015728e5a8aacaa68ffffffffffffffff",
);

/// The generator, 2, as a group element.
const GENERATOR: [u8; ELEMENT_LEN] = {
    let mut g = [0; ELEMENT_LEN];
    g[ELEMENT_LEN - 1] = 2;
    g
};

/// What a peer's public value is, compared with the group: public data, compared in variable time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Element {
    /// 0: not in the group; every shared secret would be 0.
    Zero,
    /// 1: what a peer running with `-f` sends; every shared secret is 1.
    One,
    /// p - 1: of order 2; every shared secret is 1 or p - 1.
    MinusOne,
    /// p or more: not reduced modulo p (classic spiped refuses these too).
    OutOfRange,
    /// Anything else: 2 ..= p - 2.
    Valid,
}

impl Element {
    /// Classifies `y`, a big-endian 256-byte value.
    pub(crate) fn classify(y: &[u8; ELEMENT_LEN]) -> Self {
        let (high, last) = y.split_at(ELEMENT_LEN - 1);
        let high_zero = high.iter().all(|&b| b == 0);
        let (p_high, p_last) = P.split_at(ELEMENT_LEN - 1);
        match (high_zero, last[0]) {
            (true, 0) => Element::Zero,
            (true, 1) => Element::One,
            _ if y[..] >= P[..] => Element::OutOfRange,
            _ if high == p_high && last[0] == p_last[0] - 1 => Element::MinusOne,
            _ => Element::Valid,
        }
    }
}

/// A private exponent, `2^258 + x`, big-endian. Zeroized on drop, never printed.
pub(crate) struct Exponent(Zeroizing<[u8; EXPONENT_LEN]>);

impl Exponent {
    /// The exponent classic spiped makes from 32 random bytes `x`.
    pub(crate) fn new(x: &[u8; PRIVATE_LEN]) -> Self {
        let mut e = Zeroizing::new([0; EXPONENT_LEN]);
        e[0] = 0x04; // 2^258 = 4 * 2^256: the byte above x's 32.
        e[1..].copy_from_slice(x);
        Exponent(e)
    }

    /// The public value `2^self mod p`.
    pub(crate) fn public(&self) -> [u8; ELEMENT_LEN] {
        *Backend::pow(&GENERATOR, self)
    }

    /// The shared secret `their_public^self mod p`. `their_public` must be below p.
    pub(crate) fn agree(&self, their_public: &[u8; ELEMENT_LEN]) -> Zeroizing<[u8; ELEMENT_LEN]> {
        Backend::pow(their_public, self)
    }
}

impl core::fmt::Debug for Exponent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Exponent(<redacted>)")
    }
}

/// One way to compute `base^exponent mod p`, constant-time in the exponent.
pub(crate) trait ModExp {
    /// `base^exponent mod p`, 256 bytes big-endian. `base` is below p.
    fn pow(base: &[u8; ELEMENT_LEN], exponent: &Exponent) -> Zeroizing<[u8; ELEMENT_LEN]>;
}

/// The backend classic spiped uses: OpenSSL's with the `openssl` feature.
#[cfg(feature = "openssl")]
pub(crate) type Backend = OpenSsl;
/// The backend classic spiped uses: crypto-bigint's without the `openssl` feature.
#[cfg(not(feature = "openssl"))]
pub(crate) type Backend = CryptoBigint;

mod modulus {
    crypto_bigint::const_monty_params!(Group14, crypto_bigint::U2048, super::P_HEX, "RFC 3526 group 14's p");
}

/// crypto-bigint's Montgomery exponentiation (pure Rust), with p's parameters computed at compile
/// time. Its inputs and output are zeroized here; the window table lives on its stack.
#[cfg_attr(feature = "openssl", allow(dead_code, reason = "the reference tests compare with"))]
pub(crate) struct CryptoBigint;

impl ModExp for CryptoBigint {
    fn pow(base: &[u8; ELEMENT_LEN], exponent: &Exponent) -> Zeroizing<[u8; ELEMENT_LEN]> {
        use crypto_bigint::modular::ConstMontyForm;
        use crypto_bigint::{U320, U2048};
        let mut wide = Zeroizing::new([0u8; U320::BYTES]);
        wide[U320::BYTES - EXPONENT_LEN..].copy_from_slice(&exponent.0[..]);
        let mut e = U320::from_be_slice(&wide[..]);
        let base = ConstMontyForm::<modulus::Group14, { U2048::LIMBS }>::new(&U2048::from_be_slice(base));
        let mut r = base.pow_bounded_exp(&e, EXPONENT_BITS).retrieve();
        let mut out = Zeroizing::new([0u8; ELEMENT_LEN]);
        let mut bytes = r.to_be_bytes();
        out.copy_from_slice(bytes.as_ref());
        e.zeroize();
        r.zeroize();
        bytes.as_mut().zeroize();
        out
    }
}

/// OpenSSL's `BN_mod_exp` with `BN_FLG_CONSTTIME` on the exponent, which makes it take
/// `BN_mod_exp_mont_consttime` (its word-sized-base shortcut and its windowed variable-time path
/// are skipped when the flag is set). The exponent, the result and the context's temporaries are
/// secure-heap numbers, which OpenSSL clears when it frees them.
#[cfg(feature = "openssl")]
pub(crate) struct OpenSsl;

#[cfg(feature = "openssl")]
impl ModExp for OpenSsl {
    fn pow(base: &[u8; ELEMENT_LEN], exponent: &Exponent) -> Zeroizing<[u8; ELEMENT_LEN]> {
        use openssl::bn::{BigNum, BigNumContext};
        let computed = (|| -> Result<Zeroizing<Vec<u8>>, openssl::error::ErrorStack> {
            let mut ctx = BigNumContext::new_secure()?;
            let mut e = BigNum::new_secure()?;
            e.copy_from_slice(&exponent.0[..])?;
            e.set_const_time();
            let (base, p) = (BigNum::from_slice(base)?, BigNum::from_slice(&P)?);
            let mut r = BigNum::new_secure()?;
            r.mod_exp(&base, &e, &p, &mut ctx)?;
            Ok(Zeroizing::new(r.to_vec_padded(ELEMENT_LEN as i32)?))
        })();
        let computed = computed.expect("OpenSSL exponentiates modulo an odd p unless out of memory");
        let mut out = Zeroizing::new([0u8; ELEMENT_LEN]);
        out.copy_from_slice(&computed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// y for x = 01 02 .. 20, and the secret it shares with x = 40 41 .. 5f, from Python's integers.
    const Y_1: &str = "41012e5b08f86de2e702cc3225804c285b710a9010ee6790950cfdf05041fafee4c954bd25ecc63e444eb779fcf21f2afe50039df8ef1ce19d4eab7c4bca44d6d43f3d7e0a2a3cc90adf9937a4ec6b2a46683372acb3b38969db4014a625d016149887f95c1d66f9cccbaace40ddeec1b5ccda625629ee03c7d7eca29335499b0365d5c37155650e7531a3cbb0006ad773d199149d25970f0bf3e9c87f3d24448b164deab15bf1ba46b41e490fceffa1678ff99d4fdbfcdc7b6d6539b0627d240f1650caf11f9dc9c99bbf758a5320fabcffb77c41e79fa94995a07eb19b6ce0d6612e13a544d74a4d8fa380bfeb92ac401a2a777725d633d86d808e4ea3ce67";
    const SHARED: &str = "cc9a07d50e273935f4625104336ecfa4100f6f35ec4308dd45e1911cca4a5d5b37c802856bf6c26d978176630d29229def68b0a62f2a0b7d30064187c822fe8b5c6cec9baf8264c5818f356b26c7d28fcbc15e3b380522a5fec2d4d2bf75a09e269ad1eac2a17251bb8d2c07ed85e3deedb1b41d6f429c974131d0f0a612239665e0eb50e42f40799f3ad8130754a01ceb62a8df920eaf6a7e2a088daee2fc1ef0cfa51925a8f079dff7e9ad21ac8843ba1d63810b6067c8a61dc31ffb6629920d52d32cebabb301bb2bc0a2b276b7a6ae965fe8e1d0c9737e9a5138be49dbab5f744d2aa5e47eb9376c95e08c4b9feda8ef452ec5c2538aaba81b6ebc27907d";

    fn x(first: u8) -> [u8; PRIVATE_LEN] {
        core::array::from_fn(|i| first + i as u8)
    }

    fn known_answers<B: ModExp>() {
        let (a, b) = (Exponent::new(&x(1)), Exponent::new(&x(0x40)));
        let ya = B::pow(&GENERATOR, &a);
        assert_eq!(hex::encode(&ya[..]), Y_1);
        let yb = B::pow(&GENERATOR, &b);
        assert_eq!(hex::encode(&B::pow(&yb, &a)[..]), SHARED);
        assert_eq!(hex::encode(&B::pow(&ya, &b)[..]), SHARED);
        // 1 to any power is 1: what a peer with -f makes of our y.
        let mut one = [0u8; ELEMENT_LEN];
        one[ELEMENT_LEN - 1] = 1;
        assert_eq!(*B::pow(&one, &a), one);
    }

    #[test]
    fn crypto_bigint_matches_known_answers() {
        known_answers::<CryptoBigint>();
    }

    #[cfg(feature = "openssl")]
    #[test]
    fn openssl_matches_known_answers() {
        known_answers::<OpenSsl>();
    }

    /// Both backends give the same powers of any base below p.
    #[cfg(feature = "openssl")]
    #[test]
    fn openssl_agrees_with_crypto_bigint() {
        use proptest::prelude::*;
        let config = ProptestConfig { cases: 16, ..ProptestConfig::default() };
        proptest!(config, |(secret in any::<[u8; 32]>(), base in any::<[u8; 32]>(), high in any::<u8>())| {
            let mut element = [0u8; ELEMENT_LEN];
            element[..PRIVATE_LEN].copy_from_slice(&base);
            element[ELEMENT_LEN - 1] = high;
            element[0] &= 0x7f; // below p, whose top bits are all ones
            let e = Exponent::new(&secret);
            prop_assert_eq!(&OpenSsl::pow(&element, &e)[..], &CryptoBigint::pow(&element, &e)[..]);
            prop_assert_eq!(&OpenSsl::pow(&GENERATOR, &e)[..], &CryptoBigint::pow(&GENERATOR, &e)[..]);
        });
    }

    #[test]
    fn the_two_copies_of_p_agree() {
        assert_eq!(hex::encode(P), P_HEX);
    }

    #[test]
    fn elements_are_classified() {
        let mut y = [0u8; ELEMENT_LEN];
        assert_eq!(Element::classify(&y), Element::Zero);
        y[ELEMENT_LEN - 1] = 1;
        assert_eq!(Element::classify(&y), Element::One);
        y[ELEMENT_LEN - 1] = 2;
        assert_eq!(Element::classify(&y), Element::Valid);
        y[0] = 1;
        assert_eq!(Element::classify(&y), Element::Valid, "a high byte set, the low byte 0..=1 or not");
        y[ELEMENT_LEN - 1] = 1;
        assert_eq!(Element::classify(&y), Element::Valid);
        let mut p = P;
        assert_eq!(Element::classify(&p), Element::OutOfRange);
        p[ELEMENT_LEN - 1] -= 1;
        assert_eq!(Element::classify(&p), Element::MinusOne);
        p[ELEMENT_LEN - 1] -= 1;
        assert_eq!(Element::classify(&p), Element::Valid);
        assert_eq!(Element::classify(&[0xff; ELEMENT_LEN]), Element::OutOfRange);
        let mut above = P;
        above[ELEMENT_LEN - 9] += 1; // p's low eight bytes are all 0xff: step up above them
        assert_eq!(Element::classify(&above), Element::OutOfRange);
        assert_eq!(Element::classify(&GENERATOR), Element::Valid);
    }

    #[test]
    fn debug_prints_nothing_of_the_exponent() {
        assert_eq!(format!("{:?}", Exponent::new(&[0xab; PRIVATE_LEN])), "Exponent(<redacted>)");
    }
}
