"""``POST /jobs/run``: the asynchronous FC invocation that runs one job, free of any web framework.

A request passes these steps in order; the first that refuses answers with a JSON error, never a 500
or a stack trace:

    size          body over the cap                                             413
    signature     X-Job-Timestamp / X-Job-Signature missing, malformed, outside
                  JOB_SIGNATURE_MAX_AGE_S (past or future), or not made with
                  JOB_SECRET (constant-time compare)                            401
    replay        this exact signature was seen before (durable: SeenStore
                  kind "jobrun", shared with the webhook's dedupe table)        409
    envelope      not a job envelope (``bot.fc.envelope``)                 400
    run           the runner adopts the job into this instance's store and
                  runs it to the end, inside this request                       200 {"job_id", "status"}

The signature is checked before anything is recorded, so unsigned requests cannot fill the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from bot.answer import Answer
from bot.fc.envelope import SIGNATURE_HEADER, EnvelopeError, JobEnvelope, SignatureProblem, verify
from bot.fc.runner import FcAsyncRunner, RunnerPaused
from bot.inbound.dedupe import SeenStore

log = logging.getLogger(__name__)

SEEN_KIND = "jobrun"
# An envelope is at most 128 KB (FC's async limit); twice that leaves room and still bounds the read.
MAX_BODY_BYTES = 256 * 1024

_SIGNATURE_MESSAGES = {
    SignatureProblem.MISSING: "missing X-Job-Timestamp / X-Job-Signature headers",
    SignatureProblem.MALFORMED: "malformed X-Job-Timestamp / X-Job-Signature headers",
    SignatureProblem.EXPIRED: "the signature's timestamp is too old or in the future",
    SignatureProblem.MISMATCH: "the signature does not match (is JOB_SECRET the same on every instance?)",
}


class JobRunEndpoint:
    def __init__(
        self,
        *,
        secret: str,
        max_age_s: float,
        seen: SeenStore,
        runner: FcAsyncRunner,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._max_age_s = max_age_s
        self._seen = seen
        self._runner = runner
        self._clock = clock

    def handle(self, headers: Mapping[str, str], body: bytes | None) -> Answer:
        if body is None:
            return Answer.problem(413, "too_large", f"request body over {MAX_BODY_BYTES} bytes")
        now = self._clock()
        problem = verify(self._secret, headers, body, now=now, max_age_s=self._max_age_s)
        if problem is not None:
            log.warning("job invocation refused: %s", problem.value)
            return Answer.problem(401, problem.value, _SIGNATURE_MESSAGES[problem])
        signature = next(value for name, value in headers.items() if name.lower() == SIGNATURE_HEADER.lower())
        if not self._seen.first_time(SEEN_KIND, signature.strip(), now):
            log.warning("job invocation refused: a replayed body")
            return Answer.problem(409, "replayed", "this signed invocation was already received")
        try:
            envelope = JobEnvelope.from_json(body)
        except EnvelopeError as exc:
            log.warning("job invocation refused: %s", exc)
            return Answer.problem(400, "bad_envelope", str(exc))
        try:
            job = self._runner.execute(envelope)
        except RunnerPaused:
            return Answer.problem(503, "unavailable", "this instance is stopping")
        except Exception as exc:
            if not self._runner.accepting:
                # The instance shut down under the job (its store is closed); its user has been told.
                log.warning("job %s ended by the shutdown: %s: %s", envelope.job_id, type(exc).__name__, exc)
            else:
                # The store failed (disk full...): the job cannot even be recorded here.
                log.error("job %s could not be run: %s: %s", envelope.job_id, type(exc).__name__, exc, exc_info=True)
            return Answer.problem(503, "unavailable", "the job could not be run on this instance")
        answer: dict[str, object] = {"job_id": job.id, "status": job.status.value}
        if job.error:
            answer["error"] = job.error.get("code", "")
        return Answer(200, answer)
