"""Every prompt of the course, in one place, so it is easy to find, read and change.

Plain strings with ``{named}`` slots for ``str.format``: a SYSTEM text (who the model is, the rules) and a
USER template (the material and the question). Change one here, or pass your own to the function that
uses it: the generation cache recomputes only what changed.
"""

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

# --- Notebook 3, section 2: yes/no questions about article PDFs -------------------

# The questions of the course, each with a strict definition of the concept
# (the definition is what the evidence passages are ranked against).
EXTRACTION_QUESTIONS = {
    "knowledge_graph": {
        "question": "Does the article make explicit use of knowledge graphs?",
        "definition": (
            "A knowledge graph is a graph of entities (such as papers, authors, concepts) "
            "connected by typed relations, built or queried by the authors, for example "
            "a knowledge graph, an ontology-based graph, or linked data with triples."
        ),
    },
    "bibliometric": {
        "question": "Does the article perform a bibliometric analysis?",
        "definition": (
            "A bibliometric analysis is a quantitative analysis of publication or citation "
            "data carried out by the authors themselves, for example counting publications "
            "or citations, citation network analysis, or co-authorship analysis of a "
            "database such as Web of Science, Scopus or OpenAlex."
        ),
    },
}

# The answers a judgement may take; the model chooses among them (constrained choice).
EXTRACTION_ANSWERS = ["TRUE", "FALSE", "UNCLEAR"]

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
