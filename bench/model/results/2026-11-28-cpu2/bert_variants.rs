//! Scratch experiment (not built by cargo; evidence for docs/benchmarks.md): the
//! crate's BERT against variants of its forward pass with the same weights,
//! interleaved per iteration, wall and CPU time. Variants: fused QKV, the last
//! layer on [CLS] only, no attention mask. To rerun, copy it to
//! model/examples/ and:
//!   cargo run --release -p bertstream-model --example bert_variants -- 12 768 32 64 5 1
//! (layers hidden batch seq_len iters threads). Output of the run of
//! 2026-11-28: bert_variants-12x768-32x64-t1.log beside this file.
use std::collections::HashMap;
use std::time::Instant;

use anyhow::Result;
use bertstream_model::bert::BertForSequenceClassification;
use bertstream_model::BertConfig;
use serde_json::json;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

struct Layer {
    qkv_w: Tensor,
    qkv_b: Tensor,
    q: (Tensor, Tensor),
    k: (Tensor, Tensor),
    v: (Tensor, Tensor),
    ao: (Tensor, Tensor),
    ln1: (Tensor, Tensor),
    up: (Tensor, Tensor),
    down: (Tensor, Tensor),
    ln2: (Tensor, Tensor),
}

struct Variant {
    fused_qkv: bool,
    cls_last: bool,
    no_mask: bool,
}

fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = stat.rsplit_once(')').map(|x| x.1).unwrap_or("").split_whitespace().collect();
    (f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0)) / 100.0
}

#[allow(clippy::unwrap_used)]
fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let layers: i64 = a.get(1).map_or(12, |s| s.parse().unwrap());
    let hidden: i64 = a.get(2).map_or(768, |s| s.parse().unwrap());
    let batch: i64 = a.get(3).map_or(32, |s| s.parse().unwrap());
    let seq: i64 = a.get(4).map_or(64, |s| s.parse().unwrap());
    let iters: usize = a.get(5).map_or(5, |s| s.parse().unwrap());
    let threads: i32 = a.get(6).map_or(1, |s| s.parse().unwrap());
    tch::set_num_threads(threads);
    let heads = hidden / 64;
    let c: BertConfig = serde_json::from_value(json!({"vocab_size": 21128, "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": 4 * hidden}))?;
    tch::manual_seed(0);
    let mut vs = VarStore::new(tch::Device::Cpu);
    let model = BertForSequenceClassification::new(&vs.root(), &c, 3)?;
    vs.freeze();
    let v: HashMap<String, Tensor> = vs.variables();
    let g = |n: &str| v[n].shallow_clone();
    let wb = |p: &str| (g(&format!("{p}.weight")), g(&format!("{p}.bias")));
    let ls: Vec<Layer> = (0..layers)
        .map(|i| {
            let p = format!("bert.encoder.layer.{i}");
            let q = wb(&format!("{p}.attention.self.query"));
            let k = wb(&format!("{p}.attention.self.key"));
            let vv = wb(&format!("{p}.attention.self.value"));
            Layer {
                qkv_w: Tensor::cat(&[&q.0, &k.0, &vv.0], 0),
                qkv_b: Tensor::cat(&[&q.1, &k.1, &vv.1], 0),
                q,
                k,
                v: vv,
                ao: wb(&format!("{p}.attention.output.dense")),
                ln1: wb(&format!("{p}.attention.output.LayerNorm")),
                up: wb(&format!("{p}.intermediate.dense")),
                down: wb(&format!("{p}.output.dense")),
                ln2: wb(&format!("{p}.output.LayerNorm")),
            }
        })
        .collect();
    let word = g("bert.embeddings.word_embeddings.weight");
    let pos = g("bert.embeddings.position_embeddings.weight");
    let tt = g("bert.embeddings.token_type_embeddings.weight");
    let eln = wb("bert.embeddings.LayerNorm");
    let pool = wb("bert.pooler.dense");
    let cls = wb("classifier");
    let h = hidden;
    let lin = |x: &Tensor, w: &(Tensor, Tensor)| x.linear(&w.0, Some(&w.1));
    let ln = |x: &Tensor, w: &(Tensor, Tensor)| x.layer_norm([h], Some(&w.0), Some(&w.1), 1e-12, false);

    let forward = |ids: &Tensor, mask: &Tensor, var: &Variant| -> Tensor {
        let (b, s) = (ids.size()[0], ids.size()[1]);
        let positions = Tensor::arange(s, (Kind::Int64, ids.device()));
        let mut x = ln(&(Tensor::embedding(&word, ids, -1, false, false) + pos.index_select(0, &positions) + tt.get(0)), &eln);
        let m = if var.no_mask { None } else { Some(mask.to_kind(Kind::Bool).unsqueeze(1).unsqueeze(1)) };
        let split = |t: &Tensor, len: i64| t.view([b, len, heads, 64]).transpose(1, 2);
        for (i, l) in ls.iter().enumerate() {
            let last = var.cls_last && i + 1 == ls.len();
            let (q, k, vv) = if var.fused_qkv {
                let qkv = x.linear(&l.qkv_w, Some(&l.qkv_b));
                let parts = qkv.split(h, -1);
                (parts[0].shallow_clone(), parts[1].shallow_clone(), parts[2].shallow_clone())
            } else {
                (lin(&x, &l.q), lin(&x, &l.k), lin(&x, &l.v))
            };
            let (q, qlen, resid) = if last {
                (q.narrow(1, 0, 1), 1, x.narrow(1, 0, 1))
            } else {
                (q, s, x.shallow_clone())
            };
            let ctx = Tensor::scaled_dot_product_attention(&split(&q, qlen), &split(&k, s), &split(&vv, s), m.as_ref(), 0.0, false, None, false);
            let ctx = ctx.transpose(1, 2).reshape([b, qlen, h]);
            let att = ln(&(lin(&ctx, &l.ao) + resid), &l.ln1);
            x = ln(&(lin(&lin(&att, &l.up).gelu("none"), &l.down) + &att), &l.ln2);
        }
        lin(&lin(&x.select(1, 0), &pool).tanh(), &cls)
    };

    let _guard = tch::no_grad_guard();
    let ids = Tensor::randint(21128, [batch, seq], (Kind::Int64, tch::Device::Cpu));
    let mask = Tensor::ones([batch, seq], (Kind::Int64, tch::Device::Cpu));
    let variants = [
        ("crate", None),
        ("plain", Some(Variant { fused_qkv: false, cls_last: false, no_mask: false })),
        ("no_mask", Some(Variant { fused_qkv: false, cls_last: false, no_mask: true })),
        ("fused_qkv", Some(Variant { fused_qkv: true, cls_last: false, no_mask: false })),
        ("cls_last", Some(Variant { fused_qkv: false, cls_last: true, no_mask: false })),
        ("all3", Some(Variant { fused_qkv: true, cls_last: true, no_mask: true })),
    ];
    let base = model.forward_t(&ids, &mask, false);
    let run = |var: &Option<Variant>| match var {
        None => model.forward_t(&ids, &mask, false),
        Some(v) => forward(&ids, &mask, v),
    };
    for (name, var) in &variants {
        let diff = (run(var) - &base).abs().max().double_value(&[]);
        eprintln!("{name}: max |logit diff| vs crate = {diff:.2e}");
    }
    let mut wall: Vec<Vec<f64>> = vec![vec![]; variants.len()];
    let mut cpu: Vec<Vec<f64>> = vec![vec![]; variants.len()];
    for it in 0..iters {
        for j in 0..variants.len() {
            let j = (j + it) % variants.len();
            let (c0, t0) = (cpu_s(), Instant::now());
            let _ = run(&variants[j].1);
            wall[j].push(t0.elapsed().as_secs_f64());
            cpu[j].push(cpu_s() - c0);
        }
    }
    let med = |mut x: Vec<f64>| {
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let (bw, bc) = (med(wall[0].clone()), med(cpu[0].clone()));
    for (j, (name, _)) in variants.iter().enumerate() {
        let (w, c) = (med(wall[j].clone()), med(cpu[j].clone()));
        println!(
            "{name:10} wall {w:.3}s ({:+.1}%)  cpu {c:.3}s ({:+.1}%)  seq/s {:.1}",
            (w / bw - 1.0) * 100.0,
            (c / bc - 1.0) * 100.0,
            batch as f64 / w
        );
    }
    Ok(())
}
