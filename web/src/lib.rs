//! The tinyscore core in the browser: the page's WebAssembly module.
//!
//! It exposes to JavaScript what the page draws: a [`WebTarget`] (a 2-D Gaussian mixture the
//! user edits, or a model file dropped on the page) with its score field and log-density at
//! any time, and a [`Simulation`] of particles under a sampler, advanced step by step. Every
//! number comes from the same `no_std` core the chip runs, compiled to `wasm32` (whose f32
//! arithmetic is IEEE and never fused), so a finished simulation holds the bits
//! `tinyscore sample --exact` (or `tinyscore langevin`) writes for the same settings.
//!
//! The logic lives in [`target`], [`live`] and [`measure`], which build and test on the
//! host; this file only converts between them and JavaScript.

pub mod live;
pub mod measure;
pub mod target;

use live::{Live, Pairing, Settings};
use measure::Reference;
use target::Target;
use tinyscore::LinearSde;
use wasm_bindgen::prelude::*;

/// A score the page draws and samples.
#[wasm_bindgen(js_name = Target)]
pub struct WebTarget(Target);

#[wasm_bindgen(js_class = Target)]
impl WebTarget {
    /// The 2-D mixture of `weights`, `means` and `stds` (x, y per component).
    pub fn mixture(
        weights: Vec<f32>,
        means: Vec<f32>,
        stds: Vec<f32>,
    ) -> Result<WebTarget, JsError> {
        Target::mixture(&weights, &means, &stds)
            .map(WebTarget)
            .map_err(|e| JsError::new(&e))
    }

    /// The model file in `bytes`; a corrupt or foreign file gives the core's message.
    pub fn model(bytes: &[u8]) -> Result<WebTarget, JsError> {
        Target::model(bytes)
            .map(WebTarget)
            .map_err(|e| JsError::new(&e))
    }

    /// What the target is, in a line: a mixture's components, a model's precision and SDE.
    pub fn describe(&self) -> String {
        match (&self.0, self.0.parsed_model()) {
            (_, Some(model)) => {
                let h = model.header();
                format!(
                    "{:?} network {}→{}×{}→{}, {} SDE, t_end {}",
                    h.precision,
                    h.dims.dim,
                    h.dims.hidden,
                    h.dims.layers,
                    h.dims.dim,
                    sde_name(h.sde),
                    h.t_end
                )
            }
            (Target::Mixture { weights, .. }, None) => {
                format!("Gaussian mixture of {} components", weights.len())
            }
            (Target::Model(_), None) => String::new(),
        }
    }

    /// Whether it is a model file (its own SDE and times).
    pub fn is_model(&self) -> bool {
        matches!(self.0, Target::Model(_))
    }

    /// Whether it is a quantized model: int8 weights, with int8 or int16 activations (the
    /// page's integer slot).
    pub fn is_int8(&self) -> bool {
        self.0
            .parsed_model()
            .is_some_and(|m| m.header().precision != tinyscore::model::Precision::F32)
    }

    /// What a model's numbers are, as the page names them: `f32`, `int8` or `int16x8` (int8
    /// weights with int16 activations), packed or not; empty for a mixture.
    pub fn precision_name(&self) -> String {
        use tinyscore::model::Precision;
        let Some(model) = self.0.parsed_model() else {
            return String::new();
        };
        match model.header().precision {
            Precision::F32 => "f32",
            p if p.has_int16_activations() => "int16x8",
            _ => "int8",
        }
        .into()
    }

    /// The first time of its grids under `sde` (`vp` or `ve`; a model's own SDE wins).
    pub fn t_max(&self, sde: &str) -> Result<f32, JsError> {
        Ok(self.0.sde(exact_sde(sde)?).t_max())
    }

    /// The square `[lo, hi]²` (data units) that holds its data: a mixture's components to
    /// 3 stds, a model's normalised data to 4 stds.
    pub fn extent(&self) -> Vec<f32> {
        let (lo, hi) = match &self.0 {
            Target::Mixture { components, .. } => {
                components.iter().fold((-3.0f32, 3.0f32), |(lo, hi), c| {
                    let (m, s) = (c.mean(), c.std());
                    (
                        lo.min(m[0] - 3.0 * s[0]).min(m[1] - 3.0 * s[1]),
                        hi.max(m[0] + 3.0 * s[0]).max(m[1] + 3.0 * s[1]),
                    )
                })
            }
            Target::Model(_) => self
                .0
                .normalization()
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), (mean, std)| {
                    (lo.min(mean - 4.0 * std), hi.max(mean + 4.0 * std))
                }),
        };
        vec![lo, hi]
    }

    /// The last time of its grids.
    pub fn t_end(&self) -> f32 {
        self.0.t_end()
    }

    /// The field at `t` on an `nx × ny` grid over `[x0, x1] × [y0, y1]`: per point, row by
    /// row from `y0`, the score (x, y) and `log p_t` (NaN for a model).
    #[allow(clippy::too_many_arguments)]
    pub fn field(
        &self,
        sde: &str,
        t: f32,
        x0: f32,
        x1: f32,
        y0: f32,
        y1: f32,
        nx: u32,
        ny: u32,
    ) -> Result<Vec<f32>, JsError> {
        if u64::from(nx) * u64::from(ny) > 1 << 20 {
            return Err(JsError::new(&format!(
                "field: {nx} × {ny} points; at most 2^20"
            )));
        }
        Ok(self.0.field(exact_sde(sde)?, t, (x0, x1), (y0, y1), nx, ny))
    }
}

fn exact_sde(name: &str) -> Result<tinyscore::ModelSde, JsError> {
    target::exact_sde(name).map_err(|e| JsError::new(&e))
}

fn sde_name(sde: tinyscore::ModelSde) -> &'static str {
    match sde {
        tinyscore::ModelSde::Vp(_) => "VP",
        tinyscore::ModelSde::SubVp(_) => "sub-VP",
        tinyscore::ModelSde::Ve(_) => "VE",
    }
}

/// Particles under a sampler, advanced step by step.
#[wasm_bindgen]
pub struct Simulation {
    live: Live,
    reference: Option<Reference>,
}

#[wasm_bindgen]
impl Simulation {
    /// `n` particles of `target` under `sampler` (`em`, `pc`, `ode-heun`, `dpm2`, `ald`, any
    /// other grid sampler of `tinyscore sample`, or `ula` with `step_size` and `pairing`
    /// `full`, `half` or `mismatched`) on `sde` (`vp`, `ve`) over a `schedule` (`uniform`,
    /// `karras`, `logsnr`) grid of `steps`; particle i draws noise stream i of `seed` (an
    /// integer below 2^53).
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        target: &WebTarget,
        sampler: &str,
        sde: &str,
        schedule: &str,
        steps: u32,
        n: u32,
        seed: f64,
        step_size: f32,
        pairing: &str,
    ) -> Result<Simulation, JsError> {
        if !((0.0..=9_007_199_254_740_992.0).contains(&seed) && seed.fract() == 0.0) {
            return Err(JsError::new(&format!(
                "seed {seed}: an integer from 0 to 2^53"
            )));
        }
        let settings = Settings {
            sampler: sampler.to_owned(),
            sde: sde.to_owned(),
            schedule: schedule.to_owned(),
            steps,
            n,
            seed: seed as u64,
            step_size,
            pairing: Pairing::from_name(pairing).map_err(|e| JsError::new(&e))?,
        };
        let live = Live::new(target.0.clone(), &settings).map_err(|e| JsError::new(&e))?;
        let reference = target
            .0
            .components()
            .map(|(components, weights)| Reference::new(components, weights));
        Ok(Simulation { live, reference })
    }

    /// Takes up to `k` more steps; the number taken (0 at the end).
    pub fn advance(&mut self, k: u32) -> Result<u32, JsError> {
        self.live.advance(k).map_err(|e| JsError::new(&e))
    }

    /// Steps taken.
    pub fn done(&self) -> u32 {
        self.live.done()
    }

    /// Steps in all.
    pub fn steps(&self) -> u32 {
        self.live.steps()
    }

    /// The particles' time: the grid's t, or Langevin's kε.
    pub fn time(&self) -> f32 {
        self.live.time()
    }

    /// The particles in data units, x then y for each.
    pub fn positions(&self) -> Vec<f32> {
        self.live.positions()
    }

    /// The particles' bits as the sampler holds them (a model's normalised coordinates).
    pub fn raw(&self) -> Vec<f32> {
        self.live.raw().as_flattened().to_vec()
    }

    /// Against exact draws of a mixture target (empty for a model): sliced W2, energy
    /// distance, the same two between two exact draws (the floor), the particles' variance
    /// over the mixture's along x and y, then per component the share of particles it is
    /// most responsible for, then its weight.
    pub fn measures(&self) -> Vec<f64> {
        let (Some(reference), Some((components, weights))) =
            (&self.reference, self.live.target().components())
        else {
            return Vec::new();
        };
        let points: Vec<[f64; 2]> = self
            .live
            .raw()
            .iter()
            .map(|x| [x[0] as f64, x[1] as f64])
            .collect();
        let m = reference.measure(&points);
        let floor = reference.floor();
        let n = points.len() as f64;
        let mean = |d: usize| points.iter().map(|p| p[d]).sum::<f64>() / n;
        let variance = |d: usize| {
            let mu = mean(d);
            points.iter().map(|p| (p[d] - mu).powi(2)).sum::<f64>() / n
        };
        let mut shares = vec![0.0f64; components.len()];
        for x in self.live.raw() {
            shares[target::nearest_mode(components, weights, x)] += 1.0 / n;
        }
        let mut out = vec![
            m.sw2,
            m.energy,
            floor.sw2,
            floor.energy,
            variance(0) / reference.variance()[0],
            variance(1) / reference.variance()[1],
        ];
        out.extend(shares);
        out.extend(reference.weights());
        out
    }
}
