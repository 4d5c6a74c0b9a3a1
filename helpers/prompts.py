"""Every prompt of the course, in one place, so it is easy to find, read and change.

A prompt is a ``ChatPrompt``: a system message (who the model is, the rules), worked examples (turns the
model sees before the real one) and a user template with ``{named}`` slots for ``str.format`` (the
material and the question). The course's yes/no questions are ``Question`` objects in ``QUESTIONS``.
Change a prompt by making your own, e.g. ``ChatPrompt(my_system, CLUSTER_LABEL_PROMPT.user)``, and pass
it to the function that uses it: the generation cache recomputes only what changed.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChatPrompt:
    """A system message, worked examples as ``(user message, assistant answer)`` pairs, and a user template."""

    system: str | None
    user: str
    examples: tuple[tuple[str, str], ...] = field(default=())

    def slots(self) -> set[str]:
        """The ``{named}`` slots of the user template."""
        return {name for _, name, _, _ in string.Formatter().parse(self.user) if name}

    def require(self, *slots: str) -> ChatPrompt:
        """This prompt, after checking that its user template has each of ``slots``; else a ValueError."""
        missing = [s for s in slots if s not in self.slots()]
        if missing:
            raise ValueError(f"the user prompt needs a slot for {', '.join('{' + s + '}' for s in missing)}; "
                             f"it has {sorted(self.slots()) or 'none'}")
        return self

    def messages(self, **values) -> list[dict]:
        """The chat: the system message, the examples as user/assistant turns, then the filled user template.

        ``values`` may hold more than the template uses (a custom template may leave slots out)."""
        chat = [{"role": "system", "content": self.system}] if self.system else []
        for user, answer in self.examples:
            chat += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        return chat + [{"role": "user", "content": self.user.format(**{s: values[s] for s in self.slots()})}]


@dataclass(frozen=True)
class Question:
    """A yes/no question asked of articles: ``id`` (a short name for tables and files), the ``question`` as the
    model reads it, the ``definition`` evidence is ranked against, ``keyword_terms``, the author keywords
    that the keyword-rule baseline counts as "mentions the concept" (empty: no keyword rule), and ``method``,
    a sentence as the methods section of an article that *does* it would write it ("We collected 4,000 records
    from Scopus and counted ..."): the passages most similar to it are where the judge looks for signals of an
    analysis performed (empty: only the definition's passages)."""

    id: str
    question: str
    definition: str
    keyword_terms: tuple[str, ...] = ()
    method: str = ""

    def __post_init__(self):
        for name in ("id", "question", "definition"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"a Question needs a non-empty {name}; got {getattr(self, name)!r}")
        if not isinstance(self.method, str):
            raise ValueError(f"a Question's method must be a sentence (str, may be empty); got {self.method!r}")


# --- Notebook 3, section 1: labelling clusters ------------------------------------

CLUSTER_LABEL_SYSTEM = (
    "You name the research topics of groups of scientific articles. Reply with 3 to 5 "
    "short themes of 1 to 3 words each, separated by semicolons, on one line."
)

CLUSTER_LABEL_USER = "Article titles:\n{titles}\n\nThemes:"

# Worked examples shown to the model before each cluster (few-shot prompting).
# Small models copy the titles instead of naming themes without them. They are
# deliberately far from science of science, so a label copied from an example
# stands out instead of looking plausible.
CLUSTER_LABEL_EXAMPLES = [
    (
        [
            "Warming oceans and the decline of coral reefs",
            "Drought stress in European beech forests",
            "Modelling species migration under climate change",
            "Carbon uptake of tropical peatlands",
        ],
        "climate change; ecosystems; biodiversity; carbon cycle",
    ),
    (
        [
            "Lithium-ion battery cathodes with higher capacity",
            "Solid electrolytes for safer batteries",
            "Recycling cobalt from spent cells",
        ],
        "batteries; electrolytes; recycling",
    ),
]

CLUSTER_LABEL_PROMPT = ChatPrompt(
    CLUSTER_LABEL_SYSTEM, CLUSTER_LABEL_USER,
    tuple((CLUSTER_LABEL_USER.format(titles="\n".join(titles)), answer) for titles, answer in CLUSTER_LABEL_EXAMPLES),
)

# --- Notebook 3, section 2: yes/no questions about article PDFs -------------------

# The questions of the course, each with a strict definition of the concept
# (the definition is what the evidence passages are ranked against) and a method
# sentence as an article that does it would write it (where analysis signals are looked for).
QUESTIONS = {q.id: q for q in (
    Question(
        "knowledge_graph",
        "Does the article make explicit use of knowledge graphs?",
        "A knowledge graph is a graph of entities (such as papers, authors, concepts) "
        "connected by typed relations, built or queried by the authors, for example "
        "a knowledge graph, an ontology-based graph, or linked data with triples.",
        keyword_terms=("knowledge graph", "linked data", "semantic web"),
        method="We built a knowledge graph of 10,000 entities such as papers, authors and "
               "concepts linked by typed relations, stored it as RDF triples with an "
               "ontology and queried it with SPARQL.",
    ),
    Question(
        "bibliometric",
        "Does the article perform a bibliometric analysis?",
        "A bibliometric analysis is a quantitative analysis of publication or citation "
        "data carried out by the authors themselves, for example counting publications "
        "or citations, citation network analysis, or co-authorship analysis of a "
        "database such as Web of Science, Scopus or OpenAlex.",
        keyword_terms=("bibliometric", "scientometric", "citation analysis"),
        method="We collected 4,000 records published between 2000 and 2020 from Scopus "
               "and Web of Science, counted publications and citations per year, country "
               "and author, and built a co-authorship network.",
    ),
)}


def get_question(question: Question | str) -> Question:
    """``question`` itself, or the course question with that id; else a ValueError saying how to ask your own."""
    if isinstance(question, Question):
        return question
    if question in QUESTIONS:
        return QUESTIONS[question]
    raise ValueError(f"{question!r} is not a course question ({', '.join(QUESTIONS)}). Ask your own as "
                     "Question('my_id', 'Does the article ...?', definition='A ... is ...'): the evidence "
                     "passages are ranked against its definition")


# The answers a judgement may take; the model chooses among them (constrained choice).
EXTRACTION_ANSWERS = ["TRUE", "FALSE", "UNCLEAR"]
# What an answer is when the model's text names none of them.
UNPARSEABLE = "UNPARSEABLE"

EXTRACTION_SYSTEM = (
    "You are a careful research assistant who reads scientific articles. "
    "You answer a yes/no question about an article using only the evidence given. "
    "Answer TRUE if the evidence shows it, FALSE if it shows it is not the case or "
    "says nothing about it, UNCLEAR if it is ambiguous."
)

# {passages}: the article's sentences most similar to the definition, with their pages.
EXTRACTION_USER = (
    "Definition: {definition}\n\n"
    "Evidence from the article {file}:\n{passages}\n\n"
    "Question: {question}\n"
    "Answer with one word: TRUE, FALSE or UNCLEAR."
)

EXTRACTION_PROMPT = ChatPrompt(EXTRACTION_SYSTEM, EXTRACTION_USER)

EVIDENCE_SYSTEM = (
    "You are a careful research assistant. You quote scientific articles exactly, "
    "word for word, and never invent text."
)

# An OpenAI-compatible endpoint can write a quote itself; it must copy it verbatim,
# and the pipeline checks that it occurs in the article.
EVIDENCE_QUOTE_USER = (
    "Question: {question}\n"
    "Definition: {definition}\n\n"
    "Evidence from the article {file}:\n{passages}\n\n"
    "Copy, word for word, the one sentence from the evidence that best answers the "
    "question. Write only that sentence."
)

QUOTE_PROMPT = ChatPrompt(EVIDENCE_SYSTEM, EVIDENCE_QUOTE_USER)

# --- Notebook 3, section 3: answers from retrieved sources (helpers.retrieval.answer) ---

# What the model must write when the sources do not answer the question.
RAG_CANNOT_ANSWER = "The sources do not answer this question."

RAG_SYSTEM = (
    "You are a careful research assistant. Answer the question using only the numbered "
    "sources given, never your own knowledge. After each statement, cite the sources it "
    "comes from by their numbers in square brackets, e.g. [1] or [2][3]. If the sources "
    f"do not contain the answer, reply exactly: {RAG_CANNOT_ANSWER}"
)

RAG_USER = (
    "Sources:\n{sources}\n\n"
    "Question: {question}\n"
    "Answer in 2 to 4 sentences, citing the sources as [1], [2], ..."
)

RAG_PROMPT = ChatPrompt(RAG_SYSTEM, RAG_USER)
