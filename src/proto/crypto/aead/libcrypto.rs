//! OpenSSL's ChaCha20-Poly1305, from the system's OpenSSL 3. On CPUs with AVX-512 it runs 1.5x aws-lc's
//! AVX2 code at 16-64 KiB records (3.4 against 2.3 GB/s sealing 64 KiB on the development machine), which
//! is where bulk transfers spend their time. OpenSSL clears the key schedule when it frees the context.

use std::sync::LazyLock;

use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;
use zeroize::Zeroize;

use super::{Aead, BackendUnavailable, KEY_LEN, TAG_LEN, noise_nonce};

/// The cipher, fetched from OpenSSL's providers once: keying a context with the legacy handle would
/// fetch it again for every key (about 0.3 µs each, under a lock). The fetch fails where the
/// configuration rules ChaCha20-Poly1305 out, as a FIPS-only one does.
static CHACHA20_POLY1305: LazyLock<Result<Cipher, ErrorStack>> =
    LazyLock::new(|| Cipher::fetch(None, "ChaCha20-Poly1305", None));

/// Loads OpenSSL's configuration and fetches the cipher.
///
/// # Errors
/// When OpenSSL will not provide ChaCha20-Poly1305.
pub(crate) fn init() -> Result<(), BackendUnavailable> {
    openssl::init();
    CHACHA20_POLY1305.as_ref().map(drop).map_err(|e| BackendUnavailable(format!("OpenSSL: {e}")))
}

/// One keyed context; each record sets its nonce and direction without rekeying.
pub(crate) struct OpenSsl(CipherCtx);

impl Aead for OpenSsl {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        let cipher =
            CHACHA20_POLY1305.as_ref().expect("OpenSSL provides ChaCha20-Poly1305 (init_backends checks)");
        let mut ctx = CipherCtx::new().expect("allocating an OpenSSL cipher context");
        ctx.encrypt_init(Some(cipher), Some(key), None)
            .expect("OpenSSL takes a 32-byte ChaCha20-Poly1305 key");
        OpenSsl(ctx)
    }

    fn seal_in_place(&mut self, counter: u64, ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let ctx = &mut self.0;
        let mut tag = [0; TAG_LEN];
        ctx.encrypt_init(None, None, Some(&noise_nonce(counter)))
            .and_then(|()| ctx.cipher_update(ad, None))
            .and_then(|_| ctx.cipher_update_inplace(buf, buf.len()))
            .and_then(|_| ctx.cipher_final(&mut []))
            .and_then(|_| ctx.tag(&mut tag))
            .expect("a keyed ChaCha20-Poly1305 context seals any record up to 64 KiB");
        tag
    }

    fn open_in_place(
        &mut self,
        counter: u64,
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()> {
        let ctx = &mut self.0;
        // OpenSSL decrypts before it checks the tag, so a refused record is wiped rather than left
        // as unauthenticated plaintext.
        let verified = ctx
            .decrypt_init(None, None, Some(&noise_nonce(counter)))
            .and_then(|()| ctx.set_tag(tag))
            .and_then(|()| ctx.cipher_update(ad, None))
            .and_then(|_| ctx.cipher_update_inplace(buf, buf.len()))
            .and_then(|_| ctx.cipher_final(&mut []));
        verified.map(drop).map_err(|_| buf.zeroize())
    }
}
