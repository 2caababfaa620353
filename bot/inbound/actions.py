"""Card actions (``card.action.trigger``): cancel a job, retry its failed videos, the task form.

Each handler answers within Feishu's 3 s with a toast (and, for the form, a card); anything slow (the
reply card of a new job) goes through the outbox. Only a job's creator may act on it: the job store is
the judge when it has the job, the ``creator`` our buttons carry when it does not. A stale button, an
unknown job or someone else's job gets a polite toast, never an error.

    cancel            QUEUED: cancelled at once. RUNNING: flagged; the job stops at its next check and
                      its card shows "cancelling" meanwhile. A second click says it is under way / done.
    retry_failed      a NEW job (``parent_job_id``; idempotency key derived from the parent, so a double
                      click makes one job) with the failed videos of a finished job, with its own card
    open_task_form    answers with the form card
    submit_task_form  the form's fields -> a job, like a message would (``bot.inbound.commands`` parsing of links,
                      ``ScreenshotPlan`` for the screenshot option); invalid input -> an error toast
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from bot import cards
from bot.inbound.commands import FEISHU_HOSTS, MAX_TASK_NAME_CHARS, CommandRules, classify_link, find_links
from bot.inbound.events import CardAction, CardActionReply
from bot.inbound.insight_options import checked_preset, insight_off_notes
from bot.inbound.intake import CardActionRouter, CardReplier, send_first_card_then_submit
from bot.job.card_updater import CardSink
from bot.job.record import JobResult
from bot.job.result_folder import FolderAccess, folder_problem
from bot.keys import form_key, retry_key
from bot.outbox import Outbox
from pipeline.errors import InvalidOptionsError, PipelineError
from pipeline.jobs import Job, JobStatus, JobStore
from pipeline.jobs.runner import Runner
from pipeline.logs import log_context
from pipeline.models import AnalysisOptions, JobSpec, ScreenshotPlan, UserText, VideoSource

log = logging.getLogger(__name__)


def _toast(zh: str, en: str, kind: str = "info", card: Mapping[str, Any] | None = None) -> CardActionReply:
    return CardActionReply(toast=UserText(zh=zh, en=en), toast_type=kind, card=card)


NO_SUCH_JOB = _toast(
    "找不到这个任务，它可能已被清理。需要时请重新发送视频。",
    "This job no longer exists. Send the videos again if you still need them.",
    "warning",
)
NOT_YOURS = _toast(
    "只有发起这个任务的人可以操作它。",
    "Only the person who started this job can do that.",
    "warning",
)
NOT_YOUR_FORM = _toast(
    "这个表单是别人打开的。发送「帮助」可以打开你自己的表单。",
    "Someone else opened this form. Send “help” to open your own.",
    "warning",
)

_FOLDER_PATH = re.compile(r"^/drive/folder/([A-Za-z0-9]{8,64})/?$")


def folder_token(link: str) -> str | UserText:
    """The token of a Feishu Drive folder link (``https://<tenant>.feishu.cn/drive/folder/<token>``),
    or the words telling the user why it is not one. A bare token is taken as it is."""
    link = link.strip()
    if re.fullmatch(r"[A-Za-z0-9]{8,64}", link):
        return link
    try:
        parts = urlsplit(link)
        host = (parts.hostname or "").lower()
    except ValueError:
        host, parts = "", urlsplit("")
    feishu = host in FEISHU_HOSTS or host.endswith(tuple("." + h for h in FEISHU_HOSTS))
    match = _FOLDER_PATH.match(parts.path) if feishu and parts.scheme in ("http", "https") else None
    if match is None:
        return UserText(
            zh=f"文件夹链接无效：{link[:200]}。请在云空间打开目标文件夹，复制地址栏中 …/drive/folder/… 的链接。",
            en=f"Not a Drive folder link: {link[:200]}. Open the folder in Drive and copy the …/drive/folder/… "
            "link from the address bar.",
        )
    return match.group(1)


class CardActions:
    def __init__(
        self,
        *,
        store: JobStore,
        runner: Runner,
        outbox: Outbox,
        replier: CardReplier,
        cards_out: CardSink,
        rules: CommandRules,
        clock: Callable[[], float] = time.time,
        cancel_elsewhere: bool = False,
        folders: FolderAccess | None = None,
    ) -> None:
        """``cancel_elsewhere``: the runner can stop jobs this instance has no record of (Function
        Compute, where a click may land on another instance than the one running the job)."""
        self._cancel_elsewhere = cancel_elsewhere
        self._folders = folders  # asks Feishu whether a form's folder can take the results Base
        self._store = store
        self._runner = runner
        self._outbox = outbox
        self._replier = replier
        self._cards = cards_out
        self._rules = rules
        self._clock = clock

    def register(self, router: CardActionRouter) -> None:
        router.register(cards.CANCEL, self.cancel)
        router.register(cards.RETRY_FAILED, self.retry_failed)
        router.register(cards.OPEN_TASK_FORM, self.open_task_form)
        router.register(cards.SUBMIT_TASK_FORM, self.submit_task_form)

    # --- jobs -----------------------------------------------------------------------------------------

    def _own_job(self, action: CardAction) -> Job | CardActionReply:
        job_id = action.value.get("job_id")
        creator = action.value.get("creator")
        job = self._store.get(job_id) if isinstance(job_id, str) and job_id else None
        if job is None:
            if isinstance(creator, str) and creator and creator != action.operator_open_id:
                return NOT_YOURS
            return NO_SUCH_JOB
        if job.spec.creator_id != action.operator_open_id:
            log.info("card action %s on job %s by someone else: refused", action.action, job.id)
            return NOT_YOURS
        return job

    def cancel(self, action: CardAction) -> CardActionReply:
        job = self._own_job(action)
        if job is NO_SUCH_JOB and self._cancel_elsewhere:
            return self._cancel_elsewhere_job(action)
        if isinstance(job, CardActionReply):
            return job
        with log_context(job_id=job.id):
            if job.status is JobStatus.CANCELLED:
                return _toast("这个任务已经取消了。", "This job is already cancelled.")
            if job.status.terminal:
                return _toast("任务已经结束，无需取消。", "The job has already finished: nothing to cancel.")
            if job.cancel_requested:
                return _toast("正在取消，请稍候。", "Cancelling already: it stops after the current step.")
            if job.status is JobStatus.RUNNING:
                # Shown before the job can possibly end, so its final card always comes after this one.
                cancelling = dataclasses.replace(job, cancel_requested=True)
                self._cards.push(job.id, cards.progress_card(cancelling, now=self._clock()))
            try:
                self._runner.cancel(job.id, key=job.idempotency_key)
            except PipelineError as exc:
                log.warning("cancel failed: %s", exc)
                return _toast(exc.user_message.zh, exc.user_message.en, "warning")
            after = self._store.get(job.id) or job
            log.info("cancel requested by the creator: job now %s", after.status.value)
            if after.status.terminal:
                self._cards.show_final(after, cards.progress_card(after, now=self._clock()))
                return _toast("已取消。", "Cancelled.", "success")
            return _toast(
                "正在取消，当前步骤结束后停止。", "Cancelling: the job stops after the current step.", "success"
            )

    def _cancel_elsewhere_job(self, action: CardAction) -> CardActionReply:
        """A job running in another instance, known here only by its card's button: the button's
        creator is the clicker (``_own_job`` checked it), and its key finds the job's invocation."""
        job_id, creator, key = (_text(action.value.get(name)) for name in ("job_id", "creator", "key"))
        if not (job_id and key) or creator != action.operator_open_id:
            return NO_SUCH_JOB
        with log_context(job_id=job_id):
            try:
                self._runner.cancel(job_id, key=key)
            except PipelineError as exc:
                log.warning("cancel of a job run elsewhere failed: %s", exc)
                return _toast(exc.user_message.zh, exc.user_message.en, "warning")
            log.info("cancel requested by the creator for a job run by another instance: stopped")
        return _toast("已取消。", "Cancelled.", "success", card=cards.cancelled_elsewhere_card(job_id))

    def retry_failed(self, action: CardAction) -> CardActionReply:
        job = self._own_job(action)
        if isinstance(job, CardActionReply):
            return job
        with log_context(job_id=job.id):
            if not job.status.terminal:
                return _toast("任务还在进行中，结束后才能重试。", "The job is still running; retry once it ends.")
            failed = list(JobResult.of(job).retryable)
            if not failed:
                return _toast("没有失败的视频需要重试。", "Nothing failed: there is nothing to retry.")
            spec = JobSpec(
                sources=tuple(failed),
                options=job.spec.options,
                creator_id=job.spec.creator_id,
                chat_id=job.spec.chat_id,
                source_message_id=job.spec.source_message_id,
            )
            retry, created = self._store.create(spec, idempotency_key=retry_key(job.id), parent_job_id=job.id)
            if not created:
                # Already made (a double click): its card is on the way and it is submitted (or, after a
                # crash, queued in the store, where the next start picks it up).
                return _toast(
                    f"已经在重试了（任务 {retry.id}）。", f"A retry is already under way (job {retry.id}).", "info"
                )
            log.info("retry job %s created for %d failed video(s)", retry.id, len(failed))
            self._send_card_then_submit(
                retry, cards.queued_card(retry.id, spec, retry_of=job.id, key=retry.idempotency_key or "")
            )
            return _toast(
                f"已开始重试 {len(failed)} 个失败的视频。",
                f"Retrying {len(failed)} failed video(s).",
                "success",
            )

    def _send_card_then_submit(self, job: Job, card: Mapping[str, Any]) -> None:
        send_first_card_then_submit(
            job,
            lambda: card,
            outbox=self._outbox,
            replier=self._replier,
            store=self._store,
            runner=self._runner,
            name="reply:job",
        )

    # --- the task form --------------------------------------------------------------------------------

    def open_task_form(self, action: CardAction) -> CardActionReply:
        card = cards.task_form_card(creator_id=action.operator_open_id, max_links=self._rules.max_links)
        return _toast(
            "请在表单中填写视频链接，然后点「开始分析」。",
            "Fill in the video links in the form, then click Start.",
            card=card,
        )

    def submit_task_form(self, action: CardAction) -> CardActionReply:
        creator = action.value.get("creator")
        if isinstance(creator, str) and creator and creator != action.operator_open_id:
            return NOT_YOUR_FORM
        spec = self._spec_from_form(action)
        if isinstance(spec, UserText):
            return CardActionReply(toast=spec, toast_type="error")
        folder = spec.options.target_folder
        if folder and self._folders is not None:
            # Asked now, not when the analysis is done: an unusable folder is answered before any work.
            problem = folder_problem(self._folders, folder)
            if problem is not None:
                return CardActionReply(toast=problem, toast_type="error")
        key = form_key(action.open_message_id, action.operator_open_id, action.form_value)
        job, created = self._store.create(spec, idempotency_key=key)
        submitted = cards.form_submitted_card(job.id, len(job.spec.sources))
        if not created:
            return _toast(
                f"这个表单已经提交过了（任务 {job.id}）。",
                f"This form was already sent (job {job.id}).",
                card=submitted,
            )
        with log_context(job_id=job.id):
            log.info("job queued from the task form: %d source(s)", len(spec.sources))
        notes = insight_off_notes(spec.options, insight_enabled=self._rules.insight_enabled)
        self._send_card_then_submit(job, cards.queued_card(job.id, spec, key=job.idempotency_key or "", notes=notes))
        return _toast("已提交，开始排队分析。", "Submitted: the job is queued.", "success", card=submitted)

    def _spec_from_form(self, action: CardAction) -> JobSpec | UserText:
        form = {str(k): _text(v) for k, v in action.form_value.items()}
        sources: list[VideoSource] = []
        rejected: list[UserText] = []
        seen: set[str] = set()
        for link in find_links(form.get(cards.FORM_LINKS, "")):
            if link in seen:
                continue
            seen.add(link)
            verdict = classify_link(link)
            if isinstance(verdict, VideoSource):
                sources.append(verdict)
            else:
                rejected.append(verdict)
        if not sources:
            detail_zh = "；".join(r.zh for r in rejected[:3])
            detail_en = "; ".join(r.en for r in rejected[:3])
            return UserText(
                zh="没有可用的视频链接：请填写 http(s) 视频链接或多维表格链接。"
                + (f"（{detail_zh}）" if detail_zh else ""),
                en="No usable video link: fill in http(s) video links or a Bitable link."
                + (f" ({detail_en})" if detail_en else ""),
            )
        cap = self._rules.max_links
        if len(sources) > cap:
            over = sources[cap:]
            sources = sources[:cap]
            rejected.append(
                UserText(
                    zh=f"最多处理 {cap} 个链接：其余 {len(over)} 个未处理，请另建任务。",
                    en=f"At most {cap} links are taken: the other {len(over)} were not. Start another task for them.",
                )
            )
        mode = (form.get(cards.FORM_SCREENSHOT_MODE) or "scenes").strip().lower()
        value = form.get(cards.FORM_SCREENSHOT_VALUE, "").strip()
        if mode not in ("scenes", "interval", "times"):
            mode = "scenes"
        try:
            plan = ScreenshotPlan.parse(
                "scenes" if mode == "scenes" else f"{mode}:{value}", max_shots=self._rules.max_screenshots
            )
        except InvalidOptionsError as exc:
            return exc.user_message
        folder: str | None = None
        folder_link = form.get(cards.FORM_FOLDER, "").strip()
        if folder_link:
            token = folder_token(folder_link)
            if isinstance(token, UserText):
                return token
            folder = token
        name = " ".join(form.get(cards.FORM_TASK_NAME, "").split())[:MAX_TASK_NAME_CHARS] or None
        try:
            preset = checked_preset(form.get(cards.FORM_PRESET))
        except InvalidOptionsError as exc:
            return exc.user_message
        request = form.get(cards.FORM_ANALYSIS, "").strip() or None
        return JobSpec(
            sources=tuple(sources),
            options=AnalysisOptions(
                screenshots=plan, task_name=name, target_folder=folder, preset=preset, analysis_request=request
            ),
            creator_id=action.operator_open_id,
            chat_id=action.open_chat_id,
            source_message_id=action.open_message_id,
            rejected=tuple(rejected),
        )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)
