"""`python -m bench.language_sample`: does a shorter sample change the language detected on the corpus texts?"""
import time, trafilatura, json
from bench.extraction import page_bodies, URL
from monitor.language import _identifier, LANGUAGE_MIN_CONFIDENCE
texts=[]
for i,b in enumerate(page_bodies()):
    d=trafilatura.bare_extraction(b, url=URL.format(n=i), with_metadata=True, include_comments=False, include_tables=True, deduplicate=False)
    if d is not None and d.text and len(d.text.strip())>=200: texts.append(d.text.strip())
ident=_identifier()
def det(t,n):
    s=t[:n]
    if sum(ch.isalpha() for ch in s[:400]) < 20: return ""
    l,c=ident.classify(s); return l if c>=LANGUAGE_MIN_CONFIDENCE else ""
ref=[det(t,5000) for t in texts]
print(len(texts), "texts; longer than 5000:", sum(len(t)>5000 for t in texts), "median len", sorted(map(len,texts))[len(texts)//2])
for n in (3000,2000,1500,1000):
    t0=time.process_time(); got=[det(t,n) for t in texts]; el=time.process_time()-t0
    diff=[(r,g) for r,g in zip(ref,got) if r!=g]
    print(n, "differ", len(diff), diff[:5], "%.2f ms"%(el/len(texts)*1000))
t0=time.process_time(); [det(t,5000) for t in texts]; print(5000, "%.2f ms"%((time.process_time()-t0)/len(texts)*1000))
