//! Verification and signing keys, loaded from a shared secret or PEM.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Validation};

/// RFC 7518 §3.3: RSA keys of 2048 bits or more.
const MIN_RSA_BITS: usize = 2048;

/// Why a key could not be loaded.
///
/// ```
/// use ssehub_server::auth::{Algorithm, KeyConfig, KeyError};
/// assert!(matches!(KeyConfig::new(Algorithm::RS256, "/nonexistent/key.pem"), Err(KeyError::Read { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not PEM, or PEM of the wrong kind (a private key where a public one
    /// is expected, or the reverse).
    #[error("bad PEM: {0}")]
    Pem(#[from] PemError),
    /// The key does not suit the algorithm (e.g. an RSA key for ES256, a
    /// P-256 key for ES384).
    #[error("key does not suit {alg:?}: {reason}")]
    Mismatch {
        /// The configured algorithm.
        alg: Algorithm,
        /// What the crypto library said.
        reason: String,
    },
    /// An empty HMAC secret.
    #[error("empty secret")]
    EmptySecret,
    /// A PEM key given for an HMAC algorithm: verifying with it would make
    /// the public key a shared secret anyone could sign with.
    #[error("a PEM key cannot be an HMAC secret: name its algorithm (RS256, ES256, EdDSA…)")]
    PemAsSecret,
    /// An RSA key shorter than 2048 bits (RFC 7518 §3.3).
    #[error("RSA key of {bits} bits; at least 2048 are required")]
    WeakKey {
        /// The key's modulus length.
        bits: usize,
    },
}

/// What is wrong with a key's PEM text.
///
/// ```
/// use ssehub_server::auth::{Algorithm, KeyConfig};
/// let err = KeyConfig::new(Algorithm::ES256, "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----").unwrap_err();
/// assert_eq!(err.to_string(), "bad PEM: expected a public key, found PRIVATE KEY");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// A file that holds no `-----BEGIN` line.
    #[error("no PEM block in {}", .0.display())]
    NoBlock(PathBuf),
    /// Inline text whose `-----BEGIN` line is cut short.
    #[error("no BEGIN line")]
    NoBegin,
    /// A block of another kind.
    #[error("expected {expected}, found {found}")]
    Label {
        /// What the key must be.
        expected: &'static str,
        /// The block's label.
        found: String,
    },
}

/// One verification key bound to one algorithm: the token's `alg` must be
/// exactly that algorithm.
///
/// ```
/// use ssehub_server::auth::{Algorithm, KeyConfig};
/// let hmac = KeyConfig::new(Algorithm::HS256, "a-secret-of-at-least-32-bytes-!!").unwrap();
/// assert_eq!(hmac.algorithm(), Algorithm::HS256);
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/ec256-public.pem");
/// assert!(KeyConfig::new(Algorithm::ES256, path).is_ok());
/// assert!(KeyConfig::new(Algorithm::RS256, path).is_err());
/// ```
#[derive(Clone)]
pub struct KeyConfig {
    alg: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("alg", &self.alg)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl KeyConfig {
    /// HS256/384/512: `material` is the shared secret (its UTF-8 bytes).
    /// RS\*, PS\*, ES256, ES384, EdDSA: `material` is a PEM public key
    /// (`PUBLIC KEY`, or `RSA PUBLIC KEY` for RSA), inline (starting with
    /// `-----BEGIN`) or the path of a PEM file.
    ///
    /// # Errors
    /// [`KeyError`]: unreadable file, bad PEM, a private key, a key that
    /// does not suit `alg`, an empty secret, a short RSA key.
    ///
    /// ```
    /// use ssehub_server::auth::{Algorithm, KeyConfig};
    /// let pem = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/ed25519-public.pem"));
    /// assert!(KeyConfig::new(Algorithm::EdDSA, pem).is_ok());
    /// ```
    pub fn new(alg: Algorithm, material: &str) -> Result<Self, KeyError> {
        let key = match alg.family() {
            AlgorithmFamily::Hmac => DecodingKey::from_secret(secret(material)?),
            family => public_key(alg, family, material)?,
        };
        Ok(Self {
            alg,
            key,
            validation: validation(alg),
        })
    }

    /// A key from a JWK set, for `alg`: checked as a PEM key is (a key that
    /// suits the algorithm, RSA of at least 2048 bits).
    pub(super) fn from_decoding_key(alg: Algorithm, key: DecodingKey) -> Result<Self, KeyError> {
        if key.family() != alg.family() {
            return Err(KeyError::Mismatch {
                alg,
                reason: format!("a {:?} key", key.family()),
            });
        }
        check_fits(alg, &key)?;
        Ok(Self {
            alg,
            key,
            validation: validation(alg),
        })
    }

    /// The one algorithm this key accepts.
    ///
    /// ```
    /// use ssehub_server::auth::{Algorithm, KeyConfig};
    /// assert_eq!(KeyConfig::new(Algorithm::HS512, "s").unwrap().algorithm(), Algorithm::HS512);
    /// ```
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub(super) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    pub(super) fn validation(&self) -> &Validation {
        &self.validation
    }
}

/// What the JWT library checks: the algorithm allowlist, the signature, and
/// `exp`/`nbf` with zero leeway. The rest (`aud`, `iss`, required claims) is
/// checked in `token.rs`, where the compatibility rules live.
fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = 0;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation
}

fn secret(material: &str) -> Result<&[u8], KeyError> {
    if material.is_empty() {
        return Err(KeyError::EmptySecret);
    }
    if material.trim_start().starts_with("-----BEGIN") {
        return Err(KeyError::PemAsSecret);
    }
    // RFC 7518 §3.2 wants at least the hash size; refusing would break
    // existing deployments, so say it instead.
    if material.len() < 32 {
        tracing::warn!("HMAC secret shorter than 32 bytes: easy to brute-force");
    }
    Ok(material.as_bytes())
}

fn public_key(
    alg: Algorithm,
    family: AlgorithmFamily,
    material: &str,
) -> Result<DecodingKey, KeyError> {
    let pem = load_pem(material)?;
    expect_label(&pem, &["PUBLIC KEY", "RSA PUBLIC KEY"], "a public key")?;
    let mismatch = |err: jsonwebtoken::errors::Error| KeyError::Mismatch {
        alg,
        reason: err.to_string(),
    };
    let key = match family {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem.as_bytes()),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem.as_bytes()),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem.as_bytes()),
        AlgorithmFamily::Hmac => unreachable!("HMAC keys are secrets"),
    }
    .map_err(mismatch)?;
    check_fits(alg, &key)?;
    Ok(key)
}

/// Catches at startup what would otherwise fail on every request: a key the
/// algorithm cannot use (wrong curve, wrong size).
fn check_fits(alg: Algorithm, key: &DecodingKey) -> Result<(), KeyError> {
    let mismatch = |reason: String| KeyError::Mismatch { alg, reason };
    // A JWK's RSA key comes as its modulus and exponent, not DER.
    if let jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, .. } = key.kind() {
        let bits = modulus_bits(n);
        if bits < MIN_RSA_BITS {
            return Err(KeyError::WeakKey { bits });
        }
        return Ok(());
    }
    let bytes = key
        .try_get_as_bytes()
        .map_err(|err| mismatch(err.to_string()))?;
    match alg.family() {
        AlgorithmFamily::Rsa => {
            let utils = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.key_utils;
            let (modulus, _) = (utils.rsa_pub_components_from_public_key)(bytes)
                .map_err(|err| mismatch(err.to_string()))?;
            let bits = modulus_bits(&modulus);
            if bits < MIN_RSA_BITS {
                return Err(KeyError::WeakKey { bits });
            }
        }
        // The verifier would panic on a short Ed25519 key; check first.
        AlgorithmFamily::Ed if bytes.len() != 32 => {
            return Err(mismatch("not an Ed25519 public key".into()));
        }
        _ => {
            // Building a verifier parses the key for this exact algorithm
            // (P-256 vs P-384); an empty signature then simply fails.
            jsonwebtoken::crypto::verify("", b"", key, alg)
                .map_err(|err| mismatch(err.to_string()))?;
        }
    }
    Ok(())
}

fn modulus_bits(modulus: &[u8]) -> usize {
    let skip = modulus.iter().take_while(|&&b| b == 0).count();
    match modulus.get(skip) {
        Some(first) => (modulus.len() - skip) * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// The signing key for [`super::mint`]: an HMAC secret or a PEM private key.
pub(super) fn signing_key(alg: Algorithm, material: &str) -> Result<EncodingKey, KeyError> {
    let family = alg.family();
    if family == AlgorithmFamily::Hmac {
        return Ok(EncodingKey::from_secret(secret(material)?));
    }
    let pem = load_pem(material)?;
    expect_label(
        &pem,
        &["PRIVATE KEY", "RSA PRIVATE KEY"],
        "a PKCS#8 private key",
    )?;
    match family {
        AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem.as_bytes()),
        AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem.as_bytes()),
        AlgorithmFamily::Ed => EncodingKey::from_ed_pem(pem.as_bytes()),
        AlgorithmFamily::Hmac => unreachable!("handled above"),
    }
    .map_err(|err| KeyError::Mismatch {
        alg,
        reason: err.to_string(),
    })
}

/// Inline PEM as is; anything else is the path of a PEM file.
fn load_pem(material: &str) -> Result<Cow<'_, str>, KeyError> {
    if material.trim_start().starts_with("-----BEGIN") {
        return Ok(Cow::Borrowed(material.trim()));
    }
    let text = std::fs::read_to_string(material).map_err(|source| KeyError::Read {
        path: material.into(),
        source,
    })?;
    if !text.contains("-----BEGIN") {
        return Err(PemError::NoBlock(material.into()).into());
    }
    Ok(Cow::Owned(text))
}

fn expect_label(pem: &str, labels: &[&str], what: &'static str) -> Result<(), KeyError> {
    let label = pem
        .split_once("-----BEGIN ")
        .and_then(|(_, rest)| rest.split_once("-----"))
        .map(|(label, _)| label)
        .ok_or(PemError::NoBegin)?;
    if labels.contains(&label) {
        Ok(())
    } else {
        Err(PemError::Label {
            expected: what,
            found: label.to_owned(),
        }
        .into())
    }
}
