"""Insight: what a video says and shows, from an OpenAI-compatible model (summary, chapters, key
points, a visual read of the screenshots, presets, a free-form analysis request), a batch overview,
``notes.md``, and follow-up questions answered from stored transcripts.

On when ``LLM_BASE_URL`` and ``LLM_MODEL`` are set. Modules, one concern each:

  client     the only code that calls the model (openai SDK, JSON mode, pydantic, errors in plain words)
  presets    general / meeting / ad, and the capped free-form request
  prompts    the words sent to the model
  timeline   transcript lines, chunks, and the model's times checked against the transcript
  video      one video's insight (text and visual read at once; map-reduce for long transcripts)
  runner     one batch: the job's token budget, each video, the overview
  notes      notes.md
  fields     insight as cell/card text (results.xlsx and the bot)
  store, qa  transcripts kept for follow-up questions, and the answers
"""
