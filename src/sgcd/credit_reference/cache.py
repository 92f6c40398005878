"""A content-addressed on-disk cache of LLM credit references.

Key = sha256 over (rendered evidence, prompt version, model name): the same evidence asked of the same model
with the same prompt gives the same reference without a second request, across runs and processes. Values are
the validated reference as JSON plus the key's parts' names (model, prompt version) and a timestamp; nothing
else, in particular no API key, base URL or header. Layout: `DIR/ab/abcdef....json`.

Concurrent writers are safe: a value is written to a temporary file in the same directory and moved into place
with `os.replace` (atomic on POSIX and Windows), so a reader sees a whole old file, a whole new file, or none;
two writers of one key write the same content. A file that fails to parse or validate is a miss (counted by
the caller) and is overwritten by the next put. Only LLM answers that passed validation are stored: fallbacks
are not, so a later run may still get the LLM's reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from pydantic import ValidationError

from sgcd.credit_reference.schema import CreditReference


def cache_key(evidence_text: str, prompt_version: str, model: str) -> str:
    material = json.dumps({"evidence": evidence_text, "prompt_version": prompt_version, "model": model})
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class ReferenceCache:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> CreditReference | None:
        """The cached reference, or None when absent or unreadable."""
        try:
            record = json.loads(self.path(key).read_text(encoding="utf-8"))
            return CreditReference.model_validate(record["reference"])
        except (OSError, ValueError, KeyError, TypeError, ValidationError):
            return None

    def put(self, key: str, ref: CreditReference, model: str, prompt_version: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "model": model,
            "prompt_version": prompt_version,
            "created": time.time(),
            "reference": ref.model_dump(mode="json"),
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh, ensure_ascii=False, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
