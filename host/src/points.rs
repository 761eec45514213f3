//! The two point lists of the host: [`Points`] (f64: data, metrics, plots) and [`Samples`]
//! (f32: the samplers' output, bit for bit).

/// Points of one dimension in f64, row-major: data sets, reference draws and what metrics
/// and plots take. Data are drawn and standardised in f64, as the reference
/// implementations draw them.
#[derive(Clone, Debug, PartialEq)]
pub struct Points {
    /// The dimension of each point.
    pub dim: usize,
    /// `len × dim` coordinates.
    pub values: Vec<f64>,
}

impl Points {
    /// Points from rows of equal length.
    pub fn from_rows<const N: usize>(rows: &[[f32; N]]) -> Self {
        Points {
            dim: N,
            values: rows.iter().flatten().map(|&v| v as f64).collect(),
        }
    }
    /// The number of points.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }
    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Point `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
    /// All points in order.
    pub fn rows(&self) -> impl Iterator<Item = &[f64]> {
        self.values.chunks_exact(self.dim.max(1))
    }
}

/// Sampled points in f32, exactly as the samplers (and the chip) produce them: written to CSV
/// bit for bit, compared bit for bit with the firmware's. A second type because a sample
/// widened to f64 and back is the same f32, but an f64 data point narrowed is not.
#[derive(Clone, Debug, PartialEq)]
pub struct Samples {
    /// Coordinates per point.
    pub dim: usize,
    /// `len × dim` coordinates, row-major.
    pub values: Vec<f32>,
}

impl Samples {
    /// Samples from rows of `N` coordinates.
    pub fn from_rows<const N: usize>(rows: &[[f32; N]]) -> Self {
        Samples {
            dim: N,
            values: rows.as_flattened().to_vec(),
        }
    }
    /// Samples from states of `N` coordinates of which the first `dim` are the data's (the
    /// rest padding; see [`crate::dims`]).
    pub fn from_padded_rows<const N: usize>(rows: &[[f32; N]], dim: usize) -> Self {
        Samples {
            dim: dim.min(N),
            values: crate::dims::unpad(rows, dim),
        }
    }
    /// The number of points.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Each point's coordinates, in order.
    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.values.chunks_exact(self.dim.max(1))
    }
    /// The points in f64, for metrics and plots.
    pub fn points(&self) -> Points {
        Points {
            dim: self.dim,
            values: self.values.iter().map(|&v| v as f64).collect(),
        }
    }
}
