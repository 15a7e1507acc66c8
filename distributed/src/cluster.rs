//! The cluster's certificate authority, join tokens and the identities (certificate + key +
//! trusted CA) that clients and workers present.
//!
//! `ferrograd cluster init DIR` writes a CA (`ca.pem`, `ca.key`) and a client identity
//! (`client.pem`, `client.key`) into `DIR`. `ferrograd cluster token DIR` signs a fresh worker
//! certificate and packs it, with its key and the CA certificate, into a join token: the token
//! is a bearer secret (whoever holds it can act as a worker of the cluster) and the certificate
//! inside expires with the token, so a token found after its expiry is worthless.
//! `ferrograd worker --join TOKEN` unpacks it into the worker's state directory.

use crate::error::{Error, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// The DNS name every worker certificate carries and every client expects. Identity in the
/// cluster is "holds a certificate signed by the cluster CA", not a host name; `.invalid` is a
/// reserved top-level domain, so the name can never be confused with a real host.
pub const WORKER_NAME: &str = "worker.ferrograd.invalid";
/// The DNS name of client certificates made by `cluster init`.
pub const CLIENT_NAME: &str = "client.ferrograd.invalid";

const TOKEN_PREFIX: &str = "fgt1.";
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const CLIENT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// A certificate chain and key to present, and the CA to trust.
#[derive(Debug)]
pub struct Identity {
    /// The cluster CA certificate (the only root trusted).
    pub ca: CertificateDer<'static>,
    /// Our certificate (signed by the CA).
    pub cert: CertificateDer<'static>,
    /// Our private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// Loads `ca.pem`, `NAME.pem` and `NAME.key` from `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<Identity> {
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}.key"));
        Ok(Identity {
            ca: load_cert(&dir.join("ca.pem"))?,
            cert: load_cert(&cert_path)?,
            key: PrivateKeyDer::from_pem_file(&key_path).map_err(|e| Error::file(&key_path, e))?,
        })
    }

    /// Loads the client identity of a cluster directory made by [`init`].
    pub fn load_client(cluster_dir: &Path) -> Result<Identity> {
        Identity::load(cluster_dir, "client")
    }

    /// Writes `ca.pem`, `NAME.pem` and `NAME.key` (owner-only) into `dir`.
    pub fn save(&self, dir: &Path, name: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
        write_file(
            &dir.join("ca.pem"),
            pem("CERTIFICATE", &self.ca).as_bytes(),
            false,
        )?;
        write_file(
            &dir.join(format!("{name}.pem")),
            pem("CERTIFICATE", &self.cert).as_bytes(),
            false,
        )?;
        write_file(
            &dir.join(format!("{name}.key")),
            pem("PRIVATE KEY", self.key.secret_der()).as_bytes(),
            true,
        )
    }
}

fn load_cert(path: &Path) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_file(path).map_err(|e| Error::file(path, e))
}

fn pem(tag: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {tag}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {tag}-----\n"));
    out
}

fn write_file(path: &Path, data: &[u8], secret: bool) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = options.open(path).map_err(|e| Error::file(path, e))?;
    f.write_all(data).map_err(|e| Error::file(path, e))
}

fn cert_error(e: rcgen::Error) -> Error {
    Error::Certificate(e.to_string())
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Parameters of a leaf certificate valid from a minute ago (clock skew) until `not_after`.
fn leaf_params(
    common_name: &str,
    dns_name: &str,
    not_after: OffsetDateTime,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(vec![dns_name.to_string()]).map_err(cert_error)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = now() - time::Duration::minutes(1);
    params.not_after = not_after;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.subject_alt_names = vec![SanType::DnsName(dns_name.try_into().map_err(cert_error)?)];
    Ok(params)
}

fn private_key(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// The CA of a cluster directory, ready to sign.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn load(dir: &Path) -> Result<Authority> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let cert_pem =
            std::fs::read_to_string(&cert_path).map_err(|e| Error::file(&cert_path, e))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(|e| Error::file(&key_path, e))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| Error::file(&key_path, e))?;
        // rcgen signs with the issuer's parameters (subject, key identifier), which are
        // read back from the stored certificate; re-self-signing them gives the same issuer.
        let params = CertificateParams::from_ca_cert_pem(&cert_pem)
            .map_err(|e| Error::file(&cert_path, e))?;
        let cert = params.self_signed(&key).map_err(cert_error)?;
        Ok(Authority { cert, key })
    }

    fn sign(&self, common_name: &str, dns_name: &str, lifetime: Duration) -> Result<Identity> {
        let key = KeyPair::generate().map_err(cert_error)?;
        let params = leaf_params(common_name, dns_name, now() + lifetime)?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(cert_error)?;
        Ok(Identity {
            ca: self.cert.der().clone(),
            cert: cert.der().clone(),
            key: private_key(&key),
        })
    }
}

/// Creates a cluster CA and a client identity in `dir` (refusing to overwrite an existing CA).
pub fn init(dir: &Path) -> Result<()> {
    if dir.join("ca.key").exists() {
        return Err(Error::file(
            &dir.join("ca.key"),
            "a cluster CA already exists here; remove the directory to start a new cluster",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    let key = KeyPair::generate().map_err(cert_error)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ferrograd cluster CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now() - time::Duration::minutes(1);
    params.not_after = now() + CA_LIFETIME;
    let ca = params.self_signed(&key).map_err(cert_error)?;
    write_file(&dir.join("ca.pem"), ca.pem().as_bytes(), false)?;
    write_file(&dir.join("ca.key"), key.serialize_pem().as_bytes(), true)?;
    let authority = Authority::load(dir)?;
    authority
        .sign("ferrograd client", CLIENT_NAME, CLIENT_LIFETIME)?
        .save(dir, "client")
}

/// What a join token carries.
#[derive(Serialize, Deserialize)]
struct TokenBody {
    /// Unix seconds after which the token (and the certificate inside) is invalid.
    expires_unix: i64,
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Signs a worker certificate valid for `ttl` and returns it as a join token (a bearer secret).
pub fn token(cluster_dir: &Path, ttl: Duration) -> Result<String> {
    let authority = Authority::load(cluster_dir)?;
    let id = authority.sign("ferrograd worker", WORKER_NAME, ttl)?;
    let body = TokenBody {
        expires_unix: (now() + ttl).unix_timestamp(),
        ca: id.ca.to_vec(),
        cert: id.cert.to_vec(),
        key: id.key.secret_der().to_vec(),
    };
    let bytes = postcard::to_stdvec(&body).expect("encoding to a Vec cannot fail");
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Checks a join token (format, expiry) and returns the worker identity inside.
pub fn redeem(token: &str) -> Result<Identity> {
    let b64 = token
        .trim()
        .strip_prefix(TOKEN_PREFIX)
        .ok_or_else(|| Error::Token(format!("does not start with `{TOKEN_PREFIX}`")))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|e| Error::Token(format!("not base64: {e}")))?;
    let body: TokenBody =
        postcard::from_bytes(&bytes).map_err(|e| Error::Token(format!("undecodable: {e}")))?;
    let now = now().unix_timestamp();
    if now >= body.expires_unix {
        return Err(Error::Token(format!(
            "expired {} s ago; make a new one with `ferrograd cluster token`",
            now - body.expires_unix
        )));
    }
    let key = PrivateKeyDer::try_from(body.key).map_err(|e| Error::Token(e.to_string()))?;
    Ok(Identity {
        ca: CertificateDer::from(body.ca),
        cert: CertificateDer::from(body.cert),
        key,
    })
}

/// Where a worker keeps its identity when no `--state` is given:
/// `$XDG_DATA_HOME/ferrograd/worker` or `~/.local/share/ferrograd/worker`.
pub fn default_worker_state_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("ferrograd/worker"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".local/share/ferrograd/worker"))
        .ok_or_else(|| Error::File {
            path: PathBuf::from("~"),
            reason: "neither XDG_DATA_HOME nor HOME is set; pass --state DIR".into(),
        })
}
