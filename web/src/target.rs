//! What the particles sample: an exact 2-D Gaussian mixture (diffused by the chosen SDE) or
//! a model file's network; and the field the page draws for it.

use tinyscore::{
    Component, Diffused, GaussianMixture, LinearSde, Model, ModelSde, NeuralScore, Score, VeSde,
    VpSde,
};

/// Where an exact score's grid ends (`tinyscore sample --exact` ends there too).
pub const EXACT_T_END: f32 = 1e-3;

/// The forward process of an exact mixture, by its command-line name.
pub fn exact_sde(name: &str) -> Result<ModelSde, String> {
    match name {
        "vp" => Ok(ModelSde::Vp(VpSde::default())),
        "ve" => Ok(ModelSde::Ve(VeSde::default())),
        other => Err(format!("sde `{other}`: expected vp or ve")),
    }
}

/// A score the page samples and draws, in data units.
#[derive(Clone, Debug)]
pub enum Target {
    /// A 2-D Gaussian mixture, its score exact.
    Mixture {
        /// The components.
        components: Vec<Component<2>>,
        /// Their weights, unnormalised.
        weights: Vec<f32>,
    },
    /// A model file (f32, int8 or packed int8) of a 2-D network, validated.
    Model(Vec<u8>),
}

impl Target {
    /// The mixture of `weights` (unnormalised), `means` and `stds` (two values per component,
    /// x then y), each component checked by the core.
    pub fn mixture(weights: &[f32], means: &[f32], stds: &[f32]) -> Result<Target, String> {
        if weights.is_empty() || means.len() != 2 * weights.len() || stds.len() != means.len() {
            return Err(format!(
                "a mixture needs one weight and two means and stds per component \
                 (got {} weights, {} means, {} stds)",
                weights.len(),
                means.len(),
                stds.len()
            ));
        }
        let components = (0..weights.len())
            .map(|k| {
                let pair = |v: &[f32]| [v[2 * k], v[2 * k + 1]];
                Component::new(weights[k], pair(means), pair(stds))
                    .map_err(|e| format!("component {k}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Target::Mixture {
            components,
            weights: weights.to_vec(),
        })
    }

    /// The model in `bytes`, refused with the core's own message when it is not a valid
    /// 2-D model file.
    pub fn model(bytes: &[u8]) -> Result<Target, String> {
        let model = Model::parse(bytes).map_err(|e| format!("model file: {e}"))?;
        let dim = model.header().dims.dim;
        if dim != 2 {
            return Err(format!(
                "model file: a {dim}-D network; the page draws 2-D ones"
            ));
        }
        NeuralScore::<2>::new(model).map_err(|e| format!("model file: {e}"))?;
        Ok(Target::Model(bytes.to_vec()))
    }

    /// The parsed model, for a model target.
    pub fn parsed_model(&self) -> Option<Model<'_>> {
        match self {
            // Validated when the target was made.
            Target::Model(bytes) => Model::parse(bytes).ok(),
            Target::Mixture { .. } => None,
        }
    }

    /// The SDE the target is sampled under: a model's own, else `exact`.
    pub fn sde(&self, exact: ModelSde) -> ModelSde {
        self.parsed_model().map_or(exact, |m| m.header().sde)
    }

    /// Where its grids end: a model's `t_end`, else [`EXACT_T_END`].
    pub fn t_end(&self) -> f32 {
        self.parsed_model()
            .map_or(EXACT_T_END, |m| m.header().t_end)
    }

    /// Calls `f` with the target's score under `sde` in the coordinates the particles move
    /// in (a model's normalised ones), and `None` for a target that gives no score.
    pub fn with_score<R>(&self, sde: ModelSde, f: impl FnOnce(&dyn Score<2>) -> R) -> R {
        match self {
            Target::Mixture { components, .. } => {
                // Components are validated and never empty.
                let mixture = GaussianMixture::new(components).expect("a mixture has components");
                f(&Diffused::new(sde, mixture))
            }
            Target::Model(bytes) => {
                let model = Model::parse(bytes).expect("validated when loaded");
                f(&NeuralScore::<2>::new(model).expect("validated when loaded"))
            }
        }
    }

    /// The time-independent score of the data (a mixture's own, a model's at its `t_end`),
    /// which Langevin MCMC samples.
    pub fn with_data_score<R>(&self, f: impl FnOnce(&dyn Score<2>) -> R) -> R {
        match self {
            Target::Mixture { components, .. } => {
                let mixture = GaussianMixture::new(components).expect("a mixture has components");
                f(&mixture)
            }
            Target::Model(_) => {
                let t_end = self.t_end();
                self.with_score(self.sde(ModelSde::Vp(VpSde::default())), |score| {
                    f(&AtTime { score, t: t_end })
                })
            }
        }
    }

    /// Data units from the particles' coordinates (a model's normalisation; none for a
    /// mixture): `(mean, std)` per coordinate.
    pub fn normalization(&self) -> [(f32, f32); 2] {
        match self.parsed_model() {
            Some(model) => [model.normalization(0), model.normalization(1)],
            None => [(0.0, 1.0); 2],
        }
    }

    /// The field at time `t` on an `nx × ny` grid over `[x0, x1] × [y0, y1]` (data units;
    /// rows from y0 up, each from x0 right): per point the score's two coordinates and
    /// `log p_t` (NaN for a model, whose density the page does not integrate).
    #[allow(clippy::too_many_arguments)]
    pub fn field(
        &self,
        sde: ModelSde,
        t: f32,
        (x0, x1): (f32, f32),
        (y0, y1): (f32, f32),
        nx: u32,
        ny: u32,
    ) -> Vec<f32> {
        let [(mx, sx), (my, sy)] = self.normalization();
        let sde = self.sde(sde);
        let step =
            |lo: f32, hi: f32, k: u32, n: u32| lo + (hi - lo) * k as f32 / (n.max(2) - 1) as f32;
        let points: Vec<[f32; 2]> = (0..ny)
            .flat_map(|j| (0..nx).map(move |i| [step(x0, x1, i, nx), step(y0, y1, j, ny)]))
            .collect();
        let normalized: Vec<[f32; 2]> = points
            .iter()
            .map(|p| [(p[0] - mx) / sx, (p[1] - my) / sy])
            .collect();
        let mut scores = vec![[0.0f32; 2]; points.len()];
        self.with_score(sde, |score| score.score_batch(&normalized, t, &mut scores));
        let mixture = self.components().map(|(components, _)| {
            GaussianMixture::new(components).expect("a mixture has components")
        });
        let (alpha, sigma) = (sde.alpha(t), sde.sigma(t));
        let log_density = |p: &[f32; 2]| match &mixture {
            Some(mixture) => mixture.perturbed_log_density(p, alpha, sigma),
            None => f32::NAN,
        };
        points
            .iter()
            .zip(&scores)
            .flat_map(|(p, s)| [s[0] / sx, s[1] / sy, log_density(p)])
            .collect()
    }

    /// A mixture's components and their weights; `None` for a model.
    pub fn components(&self) -> Option<(&[Component<2>], &[f32])> {
        match self {
            Target::Mixture {
                components,
                weights,
            } => Some((components, weights)),
            Target::Model(_) => None,
        }
    }
}

/// A time-dependent score frozen at one time.
struct AtTime<'a> {
    score: &'a dyn Score<2>,
    t: f32,
}

impl Score<2> for AtTime<'_> {
    fn score(&self, x: &[f32; 2], _t: f32) -> [f32; 2] {
        self.score.score(x, self.t)
    }
    fn score_batch(&self, xs: &[[f32; 2]], _t: f32, out: &mut [[f32; 2]]) {
        self.score.score_batch(xs, self.t, out)
    }
}

/// The component of `components` (weights `weights`) most responsible for `x`: the mode it
/// belongs to.
pub fn nearest_mode(components: &[Component<2>], weights: &[f32], x: &[f32; 2]) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (k, (c, w)) in components.iter().zip(weights).enumerate() {
        let one = GaussianMixture::new(core::slice::from_ref(c)).expect("one component");
        let log = one.perturbed_log_density(x, 1.0, 0.0) + tinyscore::math::ln(*w);
        if log > best.1 {
            best = (k, log);
        }
    }
    best.0
}
