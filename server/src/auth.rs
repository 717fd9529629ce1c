//! JWT authentication and authorization.
//!
//! Accepted algorithms come from configuration, never from the token: HS256 when a secret is
//! configured, RS256/ES256 for each public key of that type (PEM or JWKS). A token whose header
//! names another algorithm (including `none`) is refused before any signature check, and the key
//! is chosen by the algorithm's family, so an RSA public key can never be used as an HMAC secret
//! (algorithm confusion).
//!
//! Claims (a superset of Qdrant's): `exp` (required), `nbf`, `iat`, `sub`, `tenant` (default
//! `default`), `access`: `"r"`, `"rw"`, `"m"` (manage: create/delete collections), or a list of
//! `{"collection", "access": "r" | "rw"}`. A token without `access` is refused.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use strata_engine::{DEFAULT_TENANT, validate_name};

/// Access level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    /// Read.
    #[serde(rename = "r")]
    Read,
    /// Read and write points.
    #[serde(rename = "rw")]
    ReadWrite,
    /// Everything, including creating and deleting collections.
    #[serde(rename = "m")]
    Manage,
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        match s {
            "r" => Ok(Level::Read),
            "rw" => Ok(Level::ReadWrite),
            "m" => Ok(Level::Manage),
            _ => Err(format!("access {s:?} is not r, rw or m")),
        }
    }
}

/// Per-collection access entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionAccess {
    /// Collection name.
    pub collection: String,
    /// Its access level (`r` or `rw`).
    pub access: Level,
}

/// The `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Access {
    /// The same level on every collection of the tenant.
    Global(Level),
    /// Levels per collection.
    Collections(Vec<CollectionAccess>),
}

/// Access to one actor type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorTypeAccess {
    /// The actor type.
    #[serde(rename = "type")]
    pub actor_type: String,
    /// Its access level (`r` or `rw`).
    pub access: Level,
}

/// The `actors` claim: one level on every actor type of the tenant, or levels per type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ActorsAccess {
    /// The same level on every actor type.
    Global(Level),
    /// Levels per actor type.
    Types(Vec<ActorTypeAccess>),
}

/// Claims Strata reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// Rights on actor state (`docs/actors.md`); a manager (`access: "m"`) has `rw` on every
    /// actor type without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actors: Option<ActorsAccess>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Tenant whose data the caller sees.
    pub tenant: String,
    /// Subject, for logs.
    pub sub: Option<String>,
    /// Rights.
    pub access: Access,
    /// Rights on actor state.
    pub actors: Option<ActorsAccess>,
}

impl Principal {
    fn level_on(&self, collection: &str) -> Option<Level> {
        match &self.access {
            Access::Global(l) => Some(*l),
            Access::Collections(list) => list
                .iter()
                .filter(|c| c.collection == collection)
                .map(|c| c.access.min(Level::ReadWrite))
                .max(),
        }
    }
    fn level_on_actors(&self, actor_type: &str) -> Option<Level> {
        if self.actors.is_none() && self.access == Access::Global(Level::Manage) {
            return Some(Level::ReadWrite);
        }
        match self.actors.as_ref()? {
            ActorsAccess::Global(l) => Some((*l).min(Level::ReadWrite)),
            ActorsAccess::Types(list) => list
                .iter()
                .filter(|a| a.actor_type == actor_type)
                .map(|a| a.access.min(Level::ReadWrite))
                .max(),
        }
    }
    /// May read states of `actor_type`.
    pub fn can_read_actors(&self, actor_type: &str) -> bool {
        self.level_on_actors(actor_type).is_some()
    }
    /// May write states of `actor_type`.
    pub fn can_write_actors(&self, actor_type: &str) -> bool {
        self.level_on_actors(actor_type) == Some(Level::ReadWrite)
    }
    /// May read `collection`.
    pub fn can_read(&self, collection: &str) -> bool {
        self.level_on(collection).is_some()
    }
    /// May write points of `collection`.
    pub fn can_write(&self, collection: &str) -> bool {
        self.level_on(collection)
            .is_some_and(|l| l >= Level::ReadWrite)
    }
    /// May create and delete collections.
    pub fn can_manage(&self) -> bool {
        self.access == Access::Global(Level::Manage)
    }
}

/// Why a token was refused (always a 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError(pub String);

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct PublicKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Verifies (and, with a secret, mints) tokens.
pub struct Authenticator {
    secret: Option<(DecodingKey, EncodingKey)>,
    public: Vec<PublicKey>,
    leeway: Duration,
    max_ttl: Duration,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.secret.is_some())
            .field("public_keys", &self.public.len())
            .finish()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses a PEM file (one or more RSA/EC public keys or certificates' keys) or a JWKS file.
fn load_public_keys(bytes: &[u8], what: &str) -> anyhow::Result<Vec<PublicKey>> {
    if String::from_utf8_lossy(bytes).trim_start().starts_with('{') {
        let set: JwkSet = serde_json::from_slice(bytes)
            .map_err(|e| anyhow::anyhow!("{what}: not a JWKS document: {e}"))?;
        let mut out = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                _ => anyhow::bail!("{what}: key {i} is neither RSA nor EC"),
            };
            let key =
                DecodingKey::from_jwk(jwk).map_err(|e| anyhow::anyhow!("{what}: key {i}: {e}"))?;
            out.push(PublicKey {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            });
        }
        return Ok(out);
    }
    let blocks = pem::parse_many(bytes).map_err(|e| anyhow::anyhow!("{what}: not PEM: {e}"))?;
    let mut out = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let one = pem::encode(block);
        if let Ok(key) = DecodingKey::from_rsa_pem(one.as_bytes()) {
            out.push(PublicKey {
                kid: None,
                alg: Algorithm::RS256,
                key,
            });
        } else if let Ok(key) = DecodingKey::from_ec_pem(one.as_bytes()) {
            out.push(PublicKey {
                kid: None,
                alg: Algorithm::ES256,
                key,
            });
        } else {
            anyhow::bail!(
                "{what}: PEM block {i} ({}) is neither an RSA nor an EC public key",
                block.tag()
            );
        }
    }
    if out.is_empty() {
        anyhow::bail!("{what}: no PEM public key or JWKS found");
    }
    Ok(out)
}

impl Authenticator {
    /// An authenticator with an optional HS256 secret and RS256/ES256 public keys (PEM or JWKS
    /// bytes).
    pub fn new(
        secret: Option<&[u8]>,
        public_keys: Option<&[u8]>,
        leeway: Duration,
        max_ttl: Duration,
    ) -> anyhow::Result<Authenticator> {
        let public = match public_keys {
            Some(b) => load_public_keys(b, "STRATA_JWT_PUBLIC_KEYS (jwt_public_keys)")?,
            None => Vec::new(),
        };
        if secret.is_none() && public.is_empty() {
            anyhow::bail!("no JWT secret and no public keys: nothing could verify a token");
        }
        // The last line of defence: whatever the source, a short (or empty) HMAC key would let
        // anyone who guesses it mint tokens.
        if let Some(s) = secret
            && s.len() < crate::run::MIN_SECRET_BYTES
        {
            anyhow::bail!(
                "the HS256 secret is {} bytes; at least {} are required",
                s.len(),
                crate::run::MIN_SECRET_BYTES
            );
        }
        Ok(Authenticator {
            secret: secret.map(|s| (DecodingKey::from_secret(s), EncodingKey::from_secret(s))),
            public,
            leeway,
            max_ttl,
        })
    }

    /// Algorithms this server accepts.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut v: Vec<Algorithm> = self.secret.iter().map(|_| Algorithm::HS256).collect();
        for p in &self.public {
            if !v.contains(&p.alg) {
                v.push(p.alg);
            }
        }
        v
    }

    /// Verifies `token` and returns who it speaks for.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            AuthError(format!(
                "malformed token header (alg none is not accepted): {e}"
            ))
        })?;
        let alg = header.alg;
        if !self.algorithms().contains(&alg) {
            return Err(AuthError(format!(
                "token algorithm {alg:?} is not accepted by this server"
            )));
        }
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::from(["exp".to_string()]);
        let keys: Vec<&DecodingKey> = match alg {
            Algorithm::HS256 => self.secret.iter().map(|(d, _)| d).collect(),
            _ => self
                .public
                .iter()
                .filter(|p| {
                    p.alg == alg && (header.kid.is_none() || p.kid.is_none() || p.kid == header.kid)
                })
                .map(|p| &p.key)
                .collect(),
        };
        let mut last = AuthError("no key for this token".into());
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return self.check_claims(data.claims),
                Err(e) => last = AuthError(format!("invalid token: {e}")),
            }
        }
        Err(last)
    }

    fn check_claims(&self, c: Claims) -> Result<Principal, AuthError> {
        let now = now();
        let leeway = self.leeway.as_secs();
        if let Some(iat) = c.iat
            && iat > now + leeway
        {
            return Err(AuthError("token issued in the future (iat)".into()));
        }
        let start = c.iat.unwrap_or(now);
        if c.exp.saturating_sub(start) > self.max_ttl.as_secs() + leeway {
            return Err(AuthError(format!(
                "token lifetime exceeds the maximum of {}s (STRATA_JWT_MAX_TTL)",
                self.max_ttl.as_secs()
            )));
        }
        let access = c
            .access
            .ok_or_else(|| AuthError("token has no access claim".into()))?;
        let tenant = c.tenant.unwrap_or_else(|| DEFAULT_TENANT.to_string());
        validate_name("tenant", &tenant).map_err(|e| AuthError(e.message().to_string()))?;
        Ok(Principal {
            tenant,
            sub: c.sub,
            access,
            actors: c.actors,
        })
    }

    /// Mints an HS256 token (needs the secret).
    pub fn mint(
        &self,
        tenant: &str,
        access: Access,
        sub: Option<&str>,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let (_, enc) = self.secret.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "minting needs the HS256 secret (STRATA_JWT_SECRET or STRATA_JWT_SECRET_FILE)"
            )
        })?;
        validate_name("tenant", tenant)
            .map_err(|e| anyhow::anyhow!("--tenant: {}", e.message()))?;
        let now = now();
        let claims = Claims {
            sub: sub.map(str::to_string),
            exp: now + ttl.as_secs(),
            nbf: None,
            iat: Some(now),
            tenant: Some(tenant.to_string()),
            access: Some(access),
            actors: None,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            enc,
        )?)
    }
}
