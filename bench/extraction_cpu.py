"""`python -m bench.extraction_cpu PAGES ORDER`: CPU ms per article in one process, bare trafilatura vs monitor's
extract_article (decode + extract + language); ORDER 0 runs bare first, 1 monitor first (the second loop profits
from trafilatura's line caches, so compare the two orders' geometric mean). For a loaded machine: CPU time only.
"""
import json, sys, time, trafilatura
sys.path.insert(0, ".")
from bench.extraction import page_bodies, URL
from monitor.extract import extract_article
from monitor.errors import PermanentError
bodies = page_bodies()[:int(sys.argv[1])]
def bare(i, b):
    trafilatura.bare_extraction(b, url=URL.format(n=i), with_metadata=True, include_comments=False, include_tables=True, deduplicate=False)
def mon(i, b):
    try: extract_article(b, url=URL.format(n=i), content_type="text/html")
    except PermanentError: pass
for i, b in enumerate(bodies[:8]): bare(i, b); mon(i, b)
out = {}
for name, fn in ((("bare", bare), ("monitor", mon)) if sys.argv[2] == "0" else (("monitor", mon), ("bare", bare))):
    t = time.process_time()
    for i, b in enumerate(bodies): fn(i, b)
    out[name] = (time.process_time() - t) / len(bodies) * 1000
print("RESULT " + json.dumps(out))
