import json, struct, sys, numpy as np, torch
folder = sys.argv[1]
with open(folder + "/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
w = {}
for k, e in h.items():
    if k == "__metadata__" or e["dtype"] != "F32": continue
    a, b = e["data_offsets"]; w[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).reshape(e["shape"]).copy())
layers = []
for l in range(6):
    p = "encoder.layer.%d." % l
    L = torch.nn.TransformerEncoderLayer(384, 12, 1536, dropout=0.0, activation="gelu", layer_norm_eps=1e-12, batch_first=True)
    L.self_attn.in_proj_weight.data = torch.cat([w[p+"attention.self.query.weight"], w[p+"attention.self.key.weight"], w[p+"attention.self.value.weight"]])
    L.self_attn.in_proj_bias.data = torch.cat([w[p+"attention.self.query.bias"], w[p+"attention.self.key.bias"], w[p+"attention.self.value.bias"]])
    L.self_attn.out_proj.weight.data = w[p+"attention.output.dense.weight"]; L.self_attn.out_proj.bias.data = w[p+"attention.output.dense.bias"]
    L.norm1.weight.data = w[p+"attention.output.LayerNorm.weight"]; L.norm1.bias.data = w[p+"attention.output.LayerNorm.bias"]
    L.linear1.weight.data = w[p+"intermediate.dense.weight"]; L.linear1.bias.data = w[p+"intermediate.dense.bias"]
    L.linear2.weight.data = w[p+"output.dense.weight"]; L.linear2.bias.data = w[p+"output.dense.bias"]
    L.norm2.weight.data = w[p+"output.LayerNorm.weight"]; L.norm2.bias.data = w[p+"output.LayerNorm.bias"]
    L.eval(); layers.append(L)
fix = json.load(open(sys.argv[2]))
for s in fix["sentences"]:
    ids = torch.tensor(s["ids"])
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:len(ids)] + w["embeddings.token_type_embeddings.weight"][0]
    x = torch.nn.functional.layer_norm(x, (384,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], 1e-12)[None]
    with torch.no_grad():
        for L in layers: x = L(x)
    e = x[0].mean(0).numpy(); ref = np.array(s["embedding"])
    print("max diff", np.abs(e - ref).max(), "cos", e @ ref / np.linalg.norm(e) / np.linalg.norm(ref))
