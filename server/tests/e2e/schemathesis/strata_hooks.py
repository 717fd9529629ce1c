"""Schemathesis hooks of test_schema_fuzz.py."""

import schemathesis


@schemathesis.check
def no_server_error_but_documented_501(ctx, response, case):
    """A 5xx is a failure, except a 501 the operation documents: a well-formed request for a
    Qdrant feature Strata lacks (docs/api.md). Replaces schemathesis's not_a_server_error,
    which counts every 5xx."""
    if response.status_code >= 500 and response.status_code != 501:
        raise AssertionError(f"server error {response.status_code}: {response.text[:200]}")
    if response.status_code == 501 and "501" not in case.operation.definition.raw.get("responses", {}):
        raise AssertionError(f"undocumented 501: {response.text[:200]}")


# 400s for schema-valid requests that depend on the data, which no schema can state; each
# pattern is matched against the error message.
DATA_DEPENDENT = [
    r"expected \d+ dimensions, got \d+",  # the collection's dimension
    r"index required but not found",  # facets need a payload index on the key
    r"has no (dense |sparse )?vector named",  # the collection's vector names
    r"is also a dense vector's",  # a sparse name equal to a dense one
    r"^filter|\.filter|filter\.",  # Qdrant's filter grammar, summarised by the document
    r"^location: ",  # a snapshot location: a URL that parses and serves an archive
    r"point \S+ (has no|does not)",  # examples and lookups by id need the point
    r"(payloads|vectors) for \d+ ids",  # batch: as many payloads and vectors as ids (one field's length against another's)
    r"is written twice in one transaction",
    r"path segment",  # payload key paths (`a.b`, `a[].b`): a grammar, summarised by the document  # a transaction's states are distinct (items against each other)
    r"query\b.*: (expected|unknown field)",  # Qdrant's query grammar, summarised by the document
    r"exceeds the maximum of \d+ \(STRATA_MAX_LIMIT\)",  # limit + offset, limit × group_size: bounds across fields
    r"is invalid \(at most 255 bytes, no control characters\)",  # vector names: object keys, which OpenAPI 3.0 cannot pattern
]


@schemathesis.check
def schema_valid_requests_are_accepted_unless_the_data_decides(ctx, response, case):
    """schemathesis's positive_data_acceptance (a schema-valid request is not refused), except
    for the 400s of DATA_DEPENDENT."""
    import re

    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    # As schemathesis's check: not found, conflicts (409) and conditions that do not hold (412)
    # are about the data too.
    if response.status_code < 400 or response.status_code in (401, 403, 404, 409, 412, 429) or response.status_code >= 500:
        return None
    try:
        message = response.json()["status"]["error"]
    except Exception:
        message = response.text
    if response.status_code == 400 and any(re.search(p, message) for p in DATA_DEPENDENT):
        return None
    raise AssertionError(f"schema-valid request refused with {response.status_code}: {message[:300]}")
