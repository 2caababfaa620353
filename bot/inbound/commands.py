"""What a user asked for, read from one Feishu message. Pure: no I/O, no SDK, no clock.

    parse_message(message, rules) -> Help | Nothing | BadOptions | NewJob

- ``text`` and ``post`` (rich text) messages: every http(s) link (in order, deduplicated), options
  written in Chinese or English, and links we cannot use (``ftp://``, ``file://``, Feishu documents)
  reported back so nothing is dropped silently.
- ``media`` (a video) and ``file`` messages: the attachment itself, fetched later through the message
  resource API (source kind ``feishu_message_resource``).
- Bitable links (``https://<tenant>.feishu.cn/base/<app_token>?table=<table_id>``) become one source of
  kind ``feishu_bitable`` that the delivery code expands into the videos the table lists.

Invalid options never become a job: they come back as ``BadOptions`` with the problem and an example.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.inbound.events import IncomingMessage
from bot.inbound.insight_options import InsightChoice, take_insight_options
from pipeline.errors import InvalidOptionsError
from pipeline.models import AnalysisOptions, JobSpec, ScreenshotPlan, UserText, VideoSource
from pipeline.names import MAX_TASK_NAME_CHARS as MAX_TASK_NAME_CHARS  # re-exported for bot.inbound.actions
from pipeline.safe_json import JsonTooDeep, loads_bounded

FEISHU_RESOURCE = "feishu_message_resource"
FEISHU_BITABLE = "feishu_bitable"
WIKI_TOKEN = "wiki_token"  # noqa: S105 - a meta key: a Bitable source linked through a wiki node (bot.job.wiki_bases)


# ------------------------------------------------------------------------------------------------
# What the parser returns
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Help:
    """The user asked how to use the bot (``帮助``, ``help``, ``/help``, or an empty mention)."""


@dataclass(frozen=True)
class Nothing:
    """Nothing to analyse. ``reason`` says why; ``rejected`` lists inputs found but not usable."""

    reason: UserText
    rejected: tuple[UserText, ...] = ()


@dataclass(frozen=True)
class BadOptions:
    """Options that cannot be honoured. No job is created; the reply shows the problem and an example."""

    problem: UserText
    example: UserText


@dataclass(frozen=True)
class NewJob:
    spec: JobSpec
    # Links found beyond the per-message cap (also listed in ``spec.rejected`` for the user).
    over_cap: tuple[str, ...] = ()


Command = Help | Nothing | BadOptions | NewJob


@dataclass(frozen=True)
class CommandRules:
    """The limits and defaults parsing depends on (from ``Settings``)."""

    max_links: int = 20
    max_screenshots: int = 20
    default_screenshots: str = "scenes"
    # Whether a task's preset and analysis request will be used (LLM_BASE_URL and LLM_MODEL set): they
    # are read either way, and the queued card says so when they will not be.
    insight_enabled: bool = True


OPTIONS_EXAMPLE = UserText(
    zh="示例：https://example.com/demo.mp4 截图 0,5,12.5 任务：周会 预设：会议",
    en="Example: https://example.com/demo.mp4 times 0,5,12.5 name: weekly sync preset: meeting",
)

UNREADABLE_CONTENT = UserText(
    zh="无法读取这条消息的内容（结构嵌套过深）。请直接发送视频链接或视频文件。",
    en="This message's content could not be read (it nests too deeply). Please send the video link or file on its own.",
)

NO_INPUT = UserText(
    zh="没有找到视频链接、视频文件或多维表格链接。",
    en="No video link, video file or Bitable link was found in the message.",
)

# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------


def parse_message(message: IncomingMessage, rules: CommandRules | None = None) -> Command:
    rules = rules or CommandRules()
    try:
        content = _load_content(message.content)
    except JsonTooDeep:
        return Nothing(reason=UNREADABLE_CONTENT)
    kind = message.message_type
    if kind == "text":
        body = _Body(parts=[("text", _without_mentions(str(content.get("text", "")), message))])
        return _from_body(body, message, rules)
    if kind == "post":
        return _from_body(_walk_post(content, message), message, rules)
    if kind == "media":
        return _from_attachment(content, message, rules, is_media=True)
    if kind == "file":
        return _from_attachment(content, message, rules, is_media=False)
    return Nothing(reason=_unsupported_type(kind))


# ------------------------------------------------------------------------------------------------
# Message bodies
# ------------------------------------------------------------------------------------------------


@dataclass
class _Body:
    """A message flattened in reading order: text runs and link targets (``a`` tags' ``href``),
    plus videos embedded in rich text."""

    parts: list[tuple[str, str]] = field(default_factory=list)  # ("text" | "href", value)
    media: list[tuple[str, str]] = field(default_factory=list)  # (file_key, name)

    @property
    def text(self) -> str:
        return "\n".join(value for kind, value in self.parts if kind == "text")


def _load_content(raw: str) -> dict[str, Any]:
    """The message's JSON content ({} when it is not JSON); raises JsonTooDeep for hostile nesting."""
    try:
        data = loads_bounded(raw) if raw else {}
    except JsonTooDeep:
        raise
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


_MENTION_KEY = re.compile(r"@_user_\d+|@_all")


def _without_mentions(text: str, message: IncomingMessage) -> str:
    for mention in message.mentions:
        if mention.key:
            text = text.replace(mention.key, " ")
    return _MENTION_KEY.sub(" ", text)


def _walk_post(content: Mapping[str, Any], message: IncomingMessage) -> _Body:
    """Rich text arrives as ``{"title", "content": [[element, ...], ...]}``; some clients nest it under
    a locale (``{"zh_cn": {...}}``). Walk every paragraph in order."""
    body = _Body()
    posts: list[Mapping[str, Any]] = []
    if "content" in content or "title" in content:
        posts.append(content)
    posts.extend(value for value in content.values() if isinstance(value, dict) and "content" in value)
    for post in posts:
        title = post.get("title")
        if isinstance(title, str) and title.strip():
            body.parts.append(("text", title))
        for element in _elements(post.get("content")):
            tag = element.get("tag")
            text = element.get("text")
            if tag == "at":
                continue
            if tag == "media" and isinstance(element.get("file_key"), str):
                body.media.append((element["file_key"], str(element.get("file_name") or "")))
                continue
            if isinstance(text, str) and text:
                body.parts.append(("text", _without_mentions(text, message)))
            href = element.get("href")
            if tag == "a" and isinstance(href, str) and href.strip():
                body.parts.append(("href", href.strip()))
    return body


def _elements(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every element dict inside the nested paragraph arrays, depth first, in reading order."""
    if isinstance(node, list):
        for item in node:
            yield from _elements(item)
    elif isinstance(node, dict) and "tag" in node:
        yield node


def _unsupported_type(kind: str) -> UserText:
    names = {
        "image": ("图片", "images"),
        "audio": ("语音", "voice messages"),
        "sticker": ("表情", "stickers"),
        "interactive": ("卡片", "cards"),
        "merge_forward": ("合并转发的消息", "forwarded message bundles"),
        "share_chat": ("群名片", "shared chats"),
        "share_user": ("个人名片", "shared contacts"),
    }
    zh, en = names.get(kind, ("这类消息", f"'{kind}' messages"))
    return UserText(
        zh=f"暂不支持{zh}。请发送视频链接、视频文件或多维表格链接。",
        en=f"The bot cannot use {en}. Send a video link, a video file or a Bitable link.",
    )


# ------------------------------------------------------------------------------------------------
# Links
# ------------------------------------------------------------------------------------------------

# Characters that end a link typed into a chat: whitespace, quotes, angle brackets, CJK ideographs and
# full-width punctuation (Chinese text often follows a link without a space).
_LINK_CHAR = r"[^\s<>\"'\u2018-\u201f\u2026\u3000-\u303f\u3400-\u9fff\uff00-\uffef]"
_LINK = re.compile(
    r"(?<![A-Za-z0-9+.\-])"
    r"(?:[A-Za-z][A-Za-z0-9+.\-]{0,19}://" + _LINK_CHAR + r"*"
    r"|(?:javascript|vbscript):" + _LINK_CHAR + r"+"
    r"|data:[a-z]+/" + _LINK_CHAR + r"*"
    r"|file:/" + _LINK_CHAR + r"*)",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?'\"*~_"
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}

FEISHU_HOSTS = ("feishu.cn", "larksuite.com", "larkoffice.com", "feishu.net")


def _clean_link(raw: str) -> str:
    """Drop punctuation that ends the sentence rather than the link; keep a closing bracket the link
    opened itself (``https://en.wikipedia.org/wiki/Foo_(bar)``)."""
    link = raw
    while link:
        last = link[-1]
        unbalanced = last in _CLOSERS and link.count(last) > link.count(_CLOSERS[last])
        if last in _TRAILING or unbalanced:
            link = link[:-1]
        else:
            break
    return link


def find_links(text: str) -> list[str]:
    """Every link-looking token in ``text`` (any scheme), cleaned, in order."""
    found = []
    for match in _LINK.finditer(text):
        link = _clean_link(match.group(0))
        if link and not link.endswith(("://", ":")):
            found.append(link)
    return found


@dataclass
class _Links:
    sources: list[VideoSource] = field(default_factory=list)
    rejected: list[UserText] = field(default_factory=list)


def _classify_links(links: Iterable[str]) -> _Links:
    result = _Links()
    seen: set[str] = set()
    for link in links:
        if link in seen:
            continue
        seen.add(link)
        source_or_problem = classify_link(link)
        if isinstance(source_or_problem, VideoSource):
            result.sources.append(source_or_problem)
        else:
            result.rejected.append(source_or_problem)
    return result


def classify_link(link: str) -> VideoSource | UserText:
    """A source for a usable link, or the words telling the user why it is not used."""
    scheme = link.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        return UserText(
            zh=f"不支持 {scheme}: 链接（只接受 http/https 链接）：{link}",
            en=f"{scheme}: links are not supported (only http/https): {link}",
        )
    try:
        parts = urlsplit(link)
        host = (parts.hostname or "").lower()
    except ValueError:
        host = ""
    if not host:
        return UserText(zh=f"链接无效：{link}", en=f"Not a valid link: {link}")
    if host in FEISHU_HOSTS or host.endswith(tuple("." + h for h in FEISHU_HOSTS)):
        return _classify_feishu_link(link, parts.path, parts.query)
    return VideoSource.url(link)


_BASE_PATH = re.compile(r"^/base/([A-Za-z0-9]+)/?$")
_WIKI_PATH = re.compile(r"^/wiki/([A-Za-z0-9]+)/?$")


def _classify_feishu_link(link: str, path: str, query: str) -> VideoSource | UserText:
    base = _BASE_PATH.match(path)
    if base:
        params = parse_qs(query)
        meta = {"url": link}
        table_id = (params.get("table") or [""])[0]
        view_id = (params.get("view") or [""])[0]
        if table_id:
            meta["table_id"] = table_id
        if view_id:
            meta["view_id"] = view_id
        return VideoSource(kind=FEISHU_BITABLE, locator=base.group(1), name="", meta=meta)
    wiki = _WIKI_PATH.match(path)
    if wiki:
        # A wiki node's token is not the Base's app_token: the job resolves it (bot.job.wiki_bases) before reading.
        params = parse_qs(query)
        meta = {"url": link, WIKI_TOKEN: wiki.group(1)}
        for key, name in (("table", "table_id"), ("view", "view_id")):
            value = (params.get(key) or [""])[0]
            if value:
                meta[name] = value
        return VideoSource(kind=FEISHU_BITABLE, locator=wiki.group(1), name="", meta=meta)
    return UserText(
        zh=f"这是飞书文档或云空间链接，不是可下载的视频：{link}。请直接发送视频文件，或发送多维表格链接。",
        en=f"This Feishu document or Drive link is not a downloadable video: {link}. Send the video file "
        "itself, or a Bitable link.",
    )


def _over_cap_notes(over: list[str], cap: int) -> list[UserText]:
    notes = [
        UserText(
            zh=f"一条消息最多处理 {cap} 个链接：已取前 {cap} 个，以下 {len(over)} 个未处理，请分开发送。",
            en=f"At most {cap} links are taken from one message: the first {cap} were taken, the {len(over)} "
            "below were not. Send them in another message.",
        )
    ]
    notes.extend(UserText(zh=f"未处理：{link}", en=f"Not taken: {link}") for link in over)
    return notes


# ------------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------------

_HELP_WORDS = {"help", "/help", "帮助", "/帮助", "使用帮助", "使用说明", "怎么用", "?", "？", "/start"}

_NUMBER_LIST = r"[-+]?[\d.:]+(?:s|秒)?(?:(?:\s*[,，、]\s*|\s+)[-+]?[\d.:]+(?:s|秒)?)*"
_LOOSE = r"[^\n;；]*"

_TIMES = re.compile(
    r"(?:截图时间|截图|截屏|\bscreenshots?\s+(?:at|times?)|\bshots?\s+at|\btimes?)"
    r"\s*(?:[:：=]\s*(?P<loose>" + _LOOSE + r")|(?P<list>" + _NUMBER_LIST + r"))",
    re.IGNORECASE,
)
_INTERVAL_ZH_EVERY = re.compile(r"每隔?\s*(?P<n>[-+]?[\d.]+)\s*(?P<unit>秒钟?|分钟|s\b|sec\w*|min\w*)", re.IGNORECASE)
_INTERVAL_EN_EVERY = re.compile(
    r"\bevery\s+(?P<n>[-+]?[\d.]+)\s*(?P<unit>s|secs?|seconds?|m|mins?|minutes?)\b", re.IGNORECASE
)
_INTERVAL_WORD = re.compile(
    r"(?:间隔|\binterval(?:\s+of)?)\s*(?:[:：=]\s*(?P<loose>[^\s,，;；]*)|(?P<n>[-+]?[\d.]+)\s*(?P<unit>秒钟?|分钟|s\b|sec\w*|min\w*)?)",
    re.IGNORECASE,
)
_SCENES = re.compile(r"场景|\bscenes\b|\bscene\s+mode\b|\bby\s+scene\b", re.IGNORECASE)
_TASK_NAME = re.compile(
    r"(?:任务名称|任务名|任务|名称|\btask(?:\s+name)?|\bname|\btitle)\s*[:：]\s*(?P<v>[^\n]*)", re.IGNORECASE
)
_LANGUAGE = re.compile(
    r"(?:语言|\blanguage|\blang)\s*(?:[:：=]\s*(?P<loose>[^\s,，;；]*)|(?P<word>中文|汉语|普通话|英文|英语|自动|"
    r"zh\b|cn\b|chinese\b|en\b|english\b|auto\b))",
    re.IGNORECASE,
)
# Where a task name written on the same line as other options stops.
_NEXT_OPTION = re.compile(
    r"\s+(?=截图|截屏|每隔?\s*\d|间隔|场景|语言|(?:times?|interval|every|scenes|language|lang|screenshots?)\b)",
    re.IGNORECASE,
)

_LANGUAGES = {
    "中文": "zh",
    "汉语": "zh",
    "普通话": "zh",
    "zh": "zh",
    "cn": "zh",
    "chinese": "zh",
    "英文": "en",
    "英语": "en",
    "en": "en",
    "english": "en",
    "自动": None,
    "auto": None,
}


@dataclass(frozen=True)
class _Options:
    plan: ScreenshotPlan
    task_name: str | None
    language: str | None
    insight: InsightChoice = field(default_factory=InsightChoice)


def _is_help(text: str) -> bool:
    words = " ".join(text.split()).strip("!！。.").lower()
    # A bare @mention of the bot (nothing else said) is answered with help too.
    return not words or words in _HELP_WORDS


def _seconds_unit(number: str, unit: str | None) -> str:
    if unit and (unit.startswith(("分", "m", "M"))):
        try:
            return f"{float(number) * 60:g}"
        except ValueError:
            return number
    return number


def _strip_units(token: str) -> str:
    token = token.strip()
    for suffix in ("秒钟", "秒", "seconds", "second", "secs", "sec", "s"):
        if token.lower().endswith(suffix) and len(token) > len(suffix):
            return token[: -len(suffix)].strip()
    return token


def parse_options(text: str, rules: CommandRules) -> _Options:
    """Options written in the message. Raises ``InvalidOptionsError`` (with words for the user)."""
    text, insight = take_insight_options(text)
    task_name: str | None = None
    name_match = _TASK_NAME.search(text)
    if name_match:
        # The name runs to the end of the line or to the next option written on the same line; only
        # that much is cut out, so options after it are still read.
        head = _NEXT_OPTION.split(name_match.group("v"), maxsplit=1)[0]
        task_name = head.strip().strip("，,。.;；").strip()[:MAX_TASK_NAME_CHARS] or None
        text = text[: name_match.start()] + " " + text[name_match.start("v") + len(head) :]

    plans: list[str] = []
    times = _TIMES.search(text)
    if times:
        raw = times.group("loose") if times.group("loose") is not None else times.group("list")
        tokens = [_strip_units(t) for t in re.split(r"[,，、\s]+", raw.strip()) if t.strip()]
        plans.append("times:" + ",".join(tokens))
    interval = _INTERVAL_ZH_EVERY.search(text) or _INTERVAL_EN_EVERY.search(text)
    if interval:
        plans.append("interval:" + _seconds_unit(interval.group("n"), interval.group("unit")))
    else:
        word = _INTERVAL_WORD.search(text)
        if word:
            if word.group("loose") is not None:
                plans.append("interval:" + _strip_units(word.group("loose")))
            else:
                plans.append("interval:" + _seconds_unit(word.group("n"), word.group("unit")))
    if _SCENES.search(text):
        plans.append("scenes")
    if len(plans) > 1:
        raise InvalidOptionsError(
            "more than one screenshot mode",
            UserText(
                zh="截图方式只能选一种：指定时间（截图 0,5,12.5）、固定间隔（每10秒截图）或按场景（场景）。",
                en="Choose one screenshot mode: given times (times 0,5,12.5), an interval (every 10s) or "
                "scene changes (scenes).",
            ),
        )
    plan = ScreenshotPlan.parse(plans[0] if plans else rules.default_screenshots, max_shots=rules.max_screenshots)

    language: str | None = None
    lang = _LANGUAGE.search(text)
    if lang:
        said = (lang.group("word") or lang.group("loose") or "").strip()
        if said.lower() not in _LANGUAGES:
            raise InvalidOptionsError(
                f"unknown language {said!r}",
                UserText(
                    zh=f"不认识的语言：{said or '空'}。可用：中文、英文、自动。",
                    en=f"Unknown language: {said or 'nothing'}. Use zh (Chinese), en (English) or auto.",
                ),
            )
        language = _LANGUAGES[said.lower()]
    return _Options(plan=plan, task_name=task_name, language=language, insight=insight)


# ------------------------------------------------------------------------------------------------
# Assembling the command
# ------------------------------------------------------------------------------------------------


def _from_body(body: _Body, message: IncomingMessage, rules: CommandRules) -> Command:
    links: list[str] = []
    option_text_parts: list[str] = []
    for kind, value in body.parts:
        if kind == "href":
            links.append(value)
            continue
        links.extend(find_links(value))
        option_text_parts.append(_LINK.sub(" ", value))
    option_text = "\n".join(option_text_parts)

    if not links and not body.media and _is_help(option_text):
        return Help()

    classified = _classify_links(links)
    sources = [
        VideoSource(
            kind=FEISHU_RESOURCE,
            locator=file_key,
            name=name,
            meta={"message_id": message.message_id, **({"file_name": name} if name else {})},
        )
        for file_key, name in body.media
    ] + classified.sources

    try:
        options = parse_options(option_text, rules)
    except InvalidOptionsError as exc:
        return BadOptions(problem=exc.user_message, example=OPTIONS_EXAMPLE)

    if not sources:
        return Nothing(reason=NO_INPUT, rejected=tuple(classified.rejected))

    over = sources[rules.max_links :]
    taken = sources[: rules.max_links]
    over_names = tuple(s.meta.get("url", s.locator) if s.kind == FEISHU_BITABLE else s.locator for s in over)
    rejected = classified.rejected + (_over_cap_notes(list(over_names), rules.max_links) if over else [])
    return NewJob(spec=_spec(taken, options, rejected, message), over_cap=over_names)


def _spec(sources: list[VideoSource], options: _Options, rejected: list[UserText], message: IncomingMessage) -> JobSpec:
    return JobSpec(
        sources=tuple(sources),
        options=AnalysisOptions(
            screenshots=options.plan,
            language=options.language,
            task_name=options.task_name,
            preset=options.insight.preset,
            analysis_request=options.insight.request,
        ),
        creator_id=message.sender_open_id,
        chat_id=message.chat_id,
        source_message_id=message.message_id,
        rejected=tuple(rejected),
    )


# Extensions that are certainly not videos: the user is asked for a video instead of a failed job.
# Anything else (including no extension) is let through: the pipeline probes the file itself.
_DOCUMENTS = ("txt", "md", "csv", "tsv", "json", "xml", "yaml", "yml", "log", "pdf", "doc", "docx", "rtf")
_OFFICE = ("xls", "xlsx", "ppt", "pptx", "key", "pages", "numbers", "odt", "ods", "odp")
_ARCHIVES = ("zip", "rar", "7z", "tar", "gz", "bz2", "xz", "tgz", "apk", "ipa", "exe", "dmg", "msi", "iso")
_IMAGES = ("png", "jpg", "jpeg", "gif", "bmp", "webp", "heic", "svg", "tif", "tiff", "ico", "psd", "ai", "sketch")
_CODE = ("html", "htm", "js", "css", "py", "java", "c", "cpp", "go", "rs", "ttf", "otf", "woff")
NOT_VIDEO_EXTENSIONS = frozenset(_DOCUMENTS + _OFFICE + _ARCHIVES + _IMAGES + _CODE)


def _from_attachment(
    content: Mapping[str, Any], message: IncomingMessage, rules: CommandRules, *, is_media: bool
) -> Command:
    file_key = content.get("file_key")
    name = str(content.get("file_name") or "")
    if not isinstance(file_key, str) or not file_key:
        return Nothing(reason=NO_INPUT)
    if not is_media:
        extension = PurePosixPath(name).suffix.lower().lstrip(".")
        if extension in NOT_VIDEO_EXTENSIONS:
            return Nothing(
                reason=UserText(
                    zh=f"「{name}」不是视频文件。请发送视频文件（如 .mp4、.mov）、视频链接或多维表格链接。",
                    en=f"“{name}” is not a video file. Send a video file (such as .mp4 or .mov), a video link "
                    "or a Bitable link.",
                )
            )
    meta = {"message_id": message.message_id}
    if name:
        meta["file_name"] = name
    duration = content.get("duration")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        meta["duration"] = str(int(duration))  # milliseconds, as Feishu sends it
    image_key = content.get("image_key")
    if isinstance(image_key, str) and image_key:
        meta["image_key"] = image_key
    source = VideoSource(kind=FEISHU_RESOURCE, locator=file_key, name=name, meta=meta)
    plan = ScreenshotPlan.parse(rules.default_screenshots, max_shots=rules.max_screenshots)
    return NewJob(spec=_spec([source], _Options(plan=plan, task_name=None, language=None), [], message))
