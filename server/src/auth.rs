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
    verified: Verified,
}

/// Tokens this server verified, with what they grant and their `exp`, so that a client sending
/// the same token with every request pays its signature check and claims parse once (they
/// were 8 % of a gRPC actor get's CPU, docs/benchmarks.md). Only a success is kept; a hit is
/// still refused once `exp` (plus leeway) has passed. The keys never change while the server
/// runs, so a token valid once stays valid until it expires. Keyed by a randomly seeded hash;
/// the token itself is compared in constant time.
#[derive(Default)]
struct Verified {
    map: std::sync::Mutex<std::collections::HashMap<u64, VerifiedToken>>,
    hasher: std::collections::hash_map::RandomState,
}

/// A verified token, what it grants, and its `exp`.
type VerifiedToken = (Box<str>, Principal, u64);

/// Tokens kept at most; a full cache is emptied (the next requests verify again).
const VERIFIED_TOKENS: usize = 4096;

/// Equal bytes, in time that depends on the lengths only.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.secret.is_some())
            .field("public_keys", &self.public.len())
            .finish()
    }
}

/// The error of a token past its `exp` (and the leeway).
fn expired() -> AuthError {
    let e = jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::ExpiredSignature);
    AuthError(format!("invalid token: {e}"))
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
            verified: Verified::default(),
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
        self.verify_at(token, now()).map(|(p, _)| p)
    }

    /// [`Authenticator::verify`], with the second (since the epoch) after which the token is
    /// refused — its `exp` plus the leeway — for a caller that acts on one verification for a
    /// while (a gRPC session stream) and must stop at that second: see
    /// [`Authenticator::still_valid`].
    pub fn verify_until(&self, token: &str) -> Result<(Principal, u64), AuthError> {
        self.verify_at(token, now())
            .map(|(p, exp)| (p, exp.saturating_add(self.leeway.as_secs())))
    }

    /// Whether a token [`Authenticator::verify_until`] gave `until` for still holds now; the
    /// error is the one `verify` gives for an expired token.
    pub fn still_valid(until: u64) -> Result<(), AuthError> {
        match now() > until {
            true => Err(expired()),
            false => Ok(()),
        }
    }

    /// [`Authenticator::verify`] at `now` (seconds since the epoch) for tokens it verified
    /// before; a new token is checked in full against the system clock. With the token's
    /// `exp`.
    fn verify_at(&self, token: &str, now: u64) -> Result<(Principal, u64), AuthError> {
        use std::hash::BuildHasher;
        let key = self.verified.hasher.hash_one(token);
        let mut map = self
            .verified
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((t, principal, exp)) = map.get(&key)
            && same_token(t.as_bytes(), token.as_bytes())
        {
            if now > exp.saturating_add(self.leeway.as_secs()) {
                map.remove(&key);
                return Err(expired());
            }
            return Ok((principal.clone(), *exp));
        }
        drop(map);
        let (principal, exp) = self.verify_in_full(token)?;
        let mut map = self
            .verified
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= VERIFIED_TOKENS {
            map.clear();
        }
        map.insert(key, (token.into(), principal.clone(), exp));
        Ok((principal, exp))
    }

    /// Signature, algorithm, time claims and rights; with the token's `exp`.
    fn verify_in_full(&self, token: &str) -> Result<(Principal, u64), AuthError> {
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
                Ok(data) => {
                    let exp = data.claims.exp;
                    return Ok((self.check_claims(data.claims)?, exp));
                }
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

/// The token a request carries, by one rule for HTTP and gRPC (as Qdrant reads them): the
/// `api-key` header when present; else `Authorization: Bearer <token>` (scheme in any case).
/// With no `api-key`, an `Authorization` header of another scheme (`Basic …`) or without a
/// token is refused, naming what was expected. `Err`: the message for a 401.
pub fn pick_token<'a>(
    api_key: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Result<&'a str, String> {
    if let Some(k) = api_key.map(str::trim).filter(|k| !k.is_empty()) {
        return Ok(k);
    }
    let Some(a) = authorization.map(str::trim) else {
        return Err(
            "missing token: send Authorization: Bearer <JWT> (or the api-key header)".into(),
        );
    };
    let (scheme, rest) = a.split_once(' ').unwrap_or((a, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(format!(
            "Authorization: expected \"Bearer <JWT>\", got the {:?} scheme",
            scheme.chars().take(16).collect::<String>()
        ));
    }
    match rest.trim() {
        "" => Err("Authorization: \"Bearer\" without a token".into()),
        t => Ok(t),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_rule_picks_the_token() {
        use super::pick_token;
        // api-key first, whatever Authorization holds (Qdrant's order).
        assert_eq!(pick_token(Some("k"), Some("Bearer t")), Ok("k"));
        assert_eq!(pick_token(Some(" k "), Some("Basic Zm9v")), Ok("k"));
        assert_eq!(pick_token(Some("k"), Some("garbage")), Ok("k"));
        // Else Bearer, in any case.
        assert_eq!(pick_token(None, Some("Bearer t")), Ok("t"));
        assert_eq!(pick_token(Some(""), Some("bearer  t ")), Ok("t"));
        assert_eq!(pick_token(None, Some("BEARER t")), Ok("t"));
        // Anything else is refused, naming it.
        for (a, says) in [
            (Some("Basic Zm9vOmJhcg=="), "\"Basic\" scheme"),
            (Some("garbage"), "\"garbage\" scheme"),
            (Some("Bearer"), "without a token"),
            (Some("Bearer   "), "without a token"),
            (None, "missing token"),
        ] {
            let e = pick_token(None, a).expect_err("refused");
            assert!(e.contains(says), "{a:?}: {e}");
        }
    }

    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(
            Some(b"a-test-secret-of-at-least-32-bytes-long!!"),
            None,
            Duration::from_secs(5),
            Duration::from_secs(86_400),
        )
        .expect("auth")
    }

    #[test]
    fn a_verified_token_is_served_from_the_cache_until_it_expires() {
        let a = auth();
        let t = a
            .mint(
                "t1",
                Access::Global(Level::Read),
                Some("me"),
                Duration::from_secs(60),
            )
            .expect("mint");
        let now = now();
        let p = a.verify_at(&t, now).expect("valid");
        assert_eq!(p.0.tenant, "t1");
        assert_eq!(a.verified.map.lock().expect("lock").len(), 1, "cached");
        assert_eq!(a.verify_at(&t, now + 30).expect("still valid"), p);
        // A session holds the principal until exp + leeway.
        let (q, until) = a.verify_until(&t).expect("valid");
        assert_eq!((q, until), (p.0, p.1 + 5));
        assert!(Authenticator::still_valid(until).is_ok());
        let e = Authenticator::still_valid(now - 1).expect_err("past");
        assert!(e.0.contains("ExpiredSignature"), "{}", e.0);
        // Past exp + leeway the cached entry refuses, as the full check would.
        let e = a.verify_at(&t, now + 60 + 6).expect_err("expired");
        assert!(e.0.contains("ExpiredSignature"), "{}", e.0);
        assert!(a.verified.map.lock().expect("lock").is_empty(), "dropped");
    }

    #[test]
    fn a_token_differing_in_one_byte_is_checked_in_full() {
        let a = auth();
        let t = a
            .mint(
                "t1",
                Access::Global(Level::Manage),
                None,
                Duration::from_secs(60),
            )
            .expect("mint");
        a.verify(&t).expect("valid");
        let mut forged = t.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).expect("ascii");
        assert!(a.verify(&forged).is_err(), "a changed signature is refused");
        assert!(a.verify("garbage").is_err());
        assert_eq!(
            a.verified.map.lock().expect("lock").len(),
            1,
            "only successes are kept"
        );
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abc", b"abd") && !same_token(b"abc", b"ab"));
    }
}
