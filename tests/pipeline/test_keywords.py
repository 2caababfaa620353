"""Keywords from transcripts: Chinese through jieba, English by frequency without stopwords."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pipeline.keywords import CHINESE_STOPWORDS, ENGLISH_STOPWORDS, extract_keywords
from tests.support.media import SPEECH_KEYWORDS, SPEECH_SENTENCES

PANDA_TEXT = (
    "大熊猫是中国特有的珍稀动物，主要生活在四川、陕西和甘肃的山区。"
    "大熊猫以竹子为主要食物，每天要吃大量竹子。"
    "然后就是说，保护大熊猫的栖息地对于大熊猫的生存非常重要，我们觉得竹林和栖息地都需要保护。"
)


def test_a_chinese_paragraph_yields_its_subject() -> None:
    keywords = extract_keywords(PANDA_TEXT, "zh")
    assert keywords[0] == "大熊猫"
    assert "竹子" in keywords[:3]
    assert "栖息地" in keywords[:4]
    assert len(keywords) == len(set(keywords)) <= 10
    # Spoken fillers and function words never make it.
    assert not {"然后", "就是说", "我们", "觉得", "主要", "非常"} & set(keywords)


def test_english_text_yields_content_words_and_no_stopwords() -> None:
    text = " ".join(SPEECH_SENTENCES) + " The budget is the main topic of the meeting, and the budget is tight."
    keywords = extract_keywords(text, "en", top_k=8)
    assert keywords[:2] == ["budget", "meeting"]  # the most frequent content words, in that order
    assert set(SPEECH_KEYWORDS) <= {k.lower() for k in extract_keywords(text, "en", top_k=12)}
    assert len(keywords) == 8
    assert not {k.lower() for k in keywords} & ENGLISH_STOPWORDS


def test_english_keeps_names_as_written_and_drops_numbers() -> None:
    text = (
        "FunASR and Whisper both transcribe speech. We compared FunASR with Whisper on 2024 recordings. "
        "Latency matters: latency of FunASR was 120 ms. It's the engine's speed that counts."
    )
    keywords = extract_keywords(text, "en", top_k=5)
    assert keywords[:3] == ["FunASR", "Whisper", "latency"]
    assert not any(k.isdigit() for k in keywords)
    assert "engine" in extract_keywords(text, "en", top_k=20)  # possessive folded into the word


def test_mixed_chinese_and_english_speech() -> None:
    text = (
        "我们今天用 FunASR 做语音识别，FunASR 的识别效果很好。然后就是说，语音识别的准确率已经很高了，"
        "the model runs on a GPU。语音模型部署在服务器上。"
    )
    keywords = extract_keywords(text, "en")  # engines mislabel mixed speech: the Chinese decides
    assert {"FunASR", "语音"} <= set(keywords[:3])
    assert "GPU" in keywords
    assert not {k.lower() for k in keywords} & (ENGLISH_STOPWORDS | CHINESE_STOPWORDS)


def test_empty_or_blank_text_has_no_keywords() -> None:
    assert extract_keywords("", "zh") == []
    assert extract_keywords("  \n\t ", "en") == []
    assert extract_keywords(PANDA_TEXT, "zh", top_k=0) == []
    assert extract_keywords("the and of to it is", "en") == []


def test_first_use_from_many_threads_gives_the_same_answer() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: extract_keywords(PANDA_TEXT, "zh", top_k=5), range(8)))
    assert all(a == answers[0] for a in answers)
    assert answers[0][0] == "大熊猫"


def test_sentence_starts_and_signposts_do_not_make_keywords() -> None:
    text = (
        "Welcome to the quarterly planning meeting. First, the budget. Budget reviews take time. "
        "Spending on cloud servers went down, and the AI group shipped the GPU cluster. "
        "Second, the roadmap. Roadmap items ship in March. Finally, hiring. Hiring starts in June. "
        "Please send your questions to the team before Friday. Thank you, and welcome again."
    )
    keywords = extract_keywords(text, "en", top_k=30)
    # Counted in lower case whatever a sentence start did to them, and shown that way.
    assert keywords[:3] == ["budget", "roadmap", "hiring"]
    assert {"quarterly", "planning", "meeting", "spending", "cloud", "servers"} <= set(keywords)
    # Acronyms and names written with a capital in mid-sentence keep their spelling.
    assert {"AI", "GPU", "March", "June", "Friday"} <= set(keywords)
    # The signposts and courtesies every talk has are not keywords, in any case.
    assert not {k.lower() for k in keywords} & {"welcome", "first", "second", "finally", "thank", "please"}
    capitalised = [k for k in keywords if k[0].isupper() and k not in {"AI", "GPU", "March", "June", "Friday"}]
    assert capitalised == []
