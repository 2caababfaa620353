"""The task form (links, task name, screenshot plan, folder) and the card that replaces it once sent."""

from __future__ import annotations

from typing import Any

from bot.cards.buttons import (
    SUBMIT_TASK_FORM,
)
from bot.cards.primitives import (
    MAX_MESSAGE_CHARS,
    Card,
    clip,
    make_card,
    markdown,
    plain,
)
from pipeline.models import UserText

FORM_LINKS = "links"
FORM_TASK_NAME = "task_name"
# The submit button's name: Feishu sends it as ``action.name`` with the form's fields, even when a client
# leaves the button's callback value out.
FORM_SUBMIT_BUTTON = "submit"
FORM_SCREENSHOT_MODE = "screenshot_mode"
FORM_SCREENSHOT_VALUE = "screenshot_value"
FORM_FOLDER = "folder"
FORM_MAX_CHARS = 1000  # Feishu's cap for one input


def form_input(name: str, label: UserText, placeholder: UserText, *, multiline: bool = False) -> dict[str, Any]:
    element: dict[str, Any] = {
        "tag": "input",
        "name": name,
        "label": {"tag": "plain_text", "content": f"{label.zh} / {label.en}"},
        "placeholder": {"tag": "plain_text", "content": clip(f"{placeholder.zh} / {placeholder.en}", 100)},
        "max_length": FORM_MAX_CHARS,
        "width": "fill",
    }
    if multiline:
        element.update({"input_type": "multiline_text", "rows": 4, "auto_resize": True, "max_rows": 10})
    return element


def task_form_card(*, creator_id: str = "", max_links: int = 20, problem: UserText | None = None) -> Card:
    """The task form (card JSON 2.0 ``form`` container): video links, a task name, the screenshot mode
    and its value, and a target Drive folder. Submitting sends every field in ``form_value``."""
    modes = [
        ("scenes", UserText(zh="按场景（默认）", en="scene changes (default)")),
        ("interval", UserText(zh="固定间隔（秒）", en="every N seconds")),
        ("times", UserText(zh="指定时间点（秒）", en="at given seconds")),
    ]
    submit_value: dict[str, str] = {"action": SUBMIT_TASK_FORM}
    if creator_id:
        submit_value["creator"] = creator_id
    form = {
        "tag": "form",
        "name": "task_form",
        "elements": [
            form_input(
                FORM_LINKS,
                UserText(
                    zh=f"视频链接（每行一个，最多 {max_links} 个）", en=f"Video links (one per line, up to {max_links})"
                ),
                UserText(zh="视频链接或多维表格链接", en="video links or a Bitable link"),
                multiline=True,
            )
            | {"required": True},
            form_input(
                FORM_TASK_NAME,
                UserText(zh="任务名称（可选）", en="Task name (optional)"),
                UserText(zh="例如：周会录像", en="e.g. weekly sync"),
            ),
            {
                "tag": "select_static",
                "name": FORM_SCREENSHOT_MODE,
                "placeholder": {"tag": "plain_text", "content": "截图方式 / Screenshot mode"},
                "initial_option": "scenes",
                "width": "fill",
                "options": [
                    {"text": {"tag": "plain_text", "content": f"{label.zh} / {label.en}"}, "value": value}
                    for value, label in modes
                ],
            },
            form_input(
                FORM_SCREENSHOT_VALUE,
                UserText(zh="间隔秒数或时间点（可选）", en="Interval or times in seconds (optional)"),
                UserText(zh="如 10，或 0,5,12.5", en="e.g. 10, or 0,5,12.5"),
            ),
            form_input(
                FORM_FOLDER,
                UserText(zh="保存到云空间文件夹（可选）", en="Save into a Drive folder (optional)"),
                UserText(zh="文件夹链接 …/drive/folder/…", en="folder link …/drive/folder/…"),
            ),
            {
                "tag": "button",
                "name": FORM_SUBMIT_BUTTON,
                "text": {"tag": "plain_text", "content": "开始分析 / Start"},
                "type": "primary",
                "form_action_type": "submit",
                "behaviors": [{"type": "callback", "value": submit_value}],
            },
        ],
    }
    elements: list[dict[str, Any]] = []
    if problem is not None:
        elements += [plain(clip(problem.zh, MAX_MESSAGE_CHARS)), plain(clip(problem.en, MAX_MESSAGE_CHARS))]
    elements += [
        markdown("填写视频链接等信息后点「开始分析」。\nFill in the video links and the options, then click Start."),
        form,
    ]
    return make_card(UserText(zh="新建视频分析任务", en="New video analysis task"), "blue", elements)


def form_submitted_card(job_id: str, count: int) -> Card:
    """What the form turns into once submitted (so a second click has nothing to submit)."""
    return make_card(
        UserText(zh="任务已提交", en="Task submitted"),
        "green",
        [
            markdown(
                f"已创建任务 `{job_id}`：{count} 个视频，进度见回复的卡片。\n"
                f"Job `{job_id}` was created with {count} video(s); its progress is on the card in the reply."
            )
        ],
    )
