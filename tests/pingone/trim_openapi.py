"""How tests/pingone/pingone-openapi-subset.yaml was made from the PingOne Platform API's OpenAPI document
(patrickcping/pingone-go-sdk-v2, management/generate/pingone-management.yml, BSD-3-Clause): the paths the
emulator and the PingOne directory use, their component schemas, request-body examples kept.

    python tests/pingone/trim_openapi.py /path/to/pingone-management.yml /path/to/LICENSE
"""
# ruff: noqa
import sys
import yaml, json
d=yaml.safe_load(open(sys.argv[1]).read().replace("\t","  "))
E='/environments/{environmentID}'
ops={'/users':['get','post'],'/users/{userID}':['get','put','patch','delete'],'/users/{userID}/enabled':['get','put'],
'/users/{userID}/population':['get','put'],'/users/{userID}/memberOfGroups':['get','post'],'/users/{userID}/memberOfGroups/{groupID}':['get','delete'],
'/groups':['get','post'],'/groups/{groupID}':['get','put','delete'],'/groups/{groupID}/memberOfGroups':['get','post'],
'/groups/{groupID}/memberOfGroups/{nestedGroupID}':['get','delete'],'/populations':['get','post'],'/populations/{populationID}':['get']}
def strip(o, in_properties=False):
    if isinstance(o,dict): return {k:strip(v, k=='properties') for k,v in o.items() if in_properties or k not in('description','example','x-pingone-docs-8830')}
    if isinstance(o,list): return [strip(x) for x in o]
    return o
paths={}
for p,ms in ops.items():
    full=E+p; paths[full]={}
    for m in ms:
        op=dict(d['paths'][full][m])
        op['parameters']=[x for x in op.get('parameters',[]) if x['in'] in ('path','query')]
        op.pop('tags',None)
        rb=op.get('requestBody')
        example=None
        if rb:
            op['requestBody']={'content':{k:v for k,v in rb['content'].items() if k=='application/json'}}
            example=op['requestBody']['content'].get('application/json',{}).get('schema',{}).get('example')
        paths[full][m]=strip(op)
        if example is not None:
            paths[full][m]['requestBody']['content']['application/json']['schema']['example']=example
S=d['components']['schemas']
ea=json.loads(json.dumps(S['EntityArray']))
keep=('users','groups','populations','groupMemberships')
ea['properties']['_embedded']['properties']={k:v for k,v in ea['properties']['_embedded']['properties'].items() if k in keep}
schemas={}; responses={}
def walk(o):
    if isinstance(o,dict):
        for k,v in o.items():
            if k=='$ref':
                kind,n=v.split('/')[-2:]
                if kind=='schemas' and n not in schemas:
                    schemas[n]=strip(ea if n=='EntityArray' else S[n]); walk(schemas[n])
                if kind=='responses' and n not in responses:
                    responses[n]=strip(d['components']['responses'][n]); walk(responses[n])
            else: walk(v)
    elif isinstance(o,list):
        for x in o: walk(x)
walk(paths)
out={'openapi':d['openapi'],'info':{'title':d['info']['title']+' (trimmed)','version':d['info']['version']},
 'paths':paths,'components':{'schemas':dict(sorted(schemas.items())),'responses':responses}}
lic=open(sys.argv[2]).read()
head="# A trimmed copy of the PingOne Platform API OpenAPI document: only the paths and component schemas\n# the PingOne emulator (replicator/testing/pingone) serves, descriptions and examples removed (the request bodies' examples kept), and\n# EntityArray._embedded cut to users, groups, populations and groupMemberships.\n# Source: patrickcping/pingone-go-sdk-v2, management/generate/pingone-management.yml (version %s).\n#\n" % d['info']['version']
head+="".join("# "+l if l.strip() else "#\n" for l in lic.splitlines(True))
head+="\n"
open(__file__.rsplit('/', 1)[0] + '/pingone-openapi-subset.yaml','w').write(head+yaml.safe_dump(out,sort_keys=False,width=120))
print(sorted(schemas), sorted(responses))
