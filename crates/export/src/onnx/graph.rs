//! A small ONNX graph builder: fresh value names, nodes with attributes,
//! initializers from burn tensors, typed inputs and outputs, and the handful of
//! composite layers (linear, layer norm, convolution) every emitter uses.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, Linear, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::OnnxError;
use super::proto::{
    AttributeProto, Dimension, GraphProto, NodeProto, TensorProto, TensorShapeProto,
    TensorTypeProto, TypeProto, ValueInfoProto, attribute_type, dimension,
};
use super::proto::{FLOAT, INT64};

/// One axis of a graph input or output: fixed, or a named dynamic axis.
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A dynamic axis (`batch`, `seq`).
    Named(&'static str),
}

/// A graph under construction.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    counter: usize,
}

/// An int attribute.
pub fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i: Some(v),
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::FLOAT,
        f: Some(v),
        ..Default::default()
    }
}

/// An int-list attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A tensor's values as `f32`, row-major (`name` names it in an error).
pub fn floats<B: Backend, const D: usize>(
    t: Tensor<B, D>,
    name: &str,
) -> Result<Vec<f32>, OnnxError> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|source| OnnxError::Tensor {
            name: name.to_string(),
            source,
        })
}

fn value_info(name: &str, elem: i32, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n),
                Dim::Named(s) => dimension::Value::DimParam((*s).to_string()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: elem,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
        doc_string: String::new(),
    }
}

impl Graph {
    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: i32, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, elem, dims));
        name.to_string()
    }

    /// Names `value` as the graph output `name` (an Identity node) with its type.
    pub fn output(&mut self, value: &str, name: &str, elem: i32, dims: &[Dim]) {
        self.nodes.push(NodeProto {
            input: vec![value.into()],
            output: vec![name.into()],
            name: format!("output_{name}"),
            op_type: "Identity".into(),
            ..Default::default()
        });
        self.outputs.push(value_info(name, elem, dims));
    }

    /// A node with one output; returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.counter += 1;
        let out = format!("{}_{}", op.to_ascii_lowercase(), self.counter);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: format!("n{}_{op}", self.counter),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// A float initializer.
    pub fn init_f32(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type: FLOAT,
            name: name.into(),
            raw_data: raw,
        });
        name.to_string()
    }

    /// An int64 initializer.
    pub fn init_i64(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type: INT64,
            name: name.into(),
            raw_data: raw,
        });
        name.to_string()
    }

    /// A scalar float constant (an initializer with a fresh name).
    pub fn scalar(&mut self, v: f32) -> String {
        self.counter += 1;
        let name = format!("const_{}", self.counter);
        self.init_f32(&name, &[], &[v])
    }

    /// A 1-D int64 constant (axes, shapes).
    pub fn ints(&mut self, v: &[i64]) -> String {
        self.counter += 1;
        let name = format!("ints_{}", self.counter);
        self.init_i64(&name, &[v.len() as i64], v)
    }

    /// A scalar int64 constant (a Gather index).
    pub fn int_scalar(&mut self, v: i64) -> String {
        self.counter += 1;
        let name = format!("int_{}", self.counter);
        self.init_i64(&name, &[], &[v])
    }

    /// A burn parameter as an initializer named `name`, its own shape.
    pub fn param<B: Backend, const D: usize>(
        &mut self,
        name: &str,
        p: &Param<Tensor<B, D>>,
    ) -> Result<String, OnnxError> {
        self.tensor(name, p.val())
    }

    /// A burn tensor as an initializer named `name`, its own shape.
    pub fn tensor<B: Backend, const D: usize>(
        &mut self,
        name: &str,
        t: Tensor<B, D>,
    ) -> Result<String, OnnxError> {
        let dims: Vec<i64> = t.dims().iter().map(|&d| d as i64).collect();
        let values = floats(t, name)?;
        Ok(self.init_f32(name, &dims, &values))
    }

    /// `x · W + b` for burn's `[in, out]` weight, on the last axis of `x`.
    pub fn linear<B: Backend>(
        &mut self,
        x: &str,
        l: &Linear<B>,
        name: &str,
    ) -> Result<String, OnnxError> {
        let w = self.param(&format!("{name}.weight"), &l.weight)?;
        let y = self.node("MatMul", &[x, &w], vec![]);
        match &l.bias {
            Some(b) => {
                let b = self.param(&format!("{name}.bias"), b)?;
                Ok(self.node("Add", &[&y, &b], vec![]))
            }
            None => Ok(y),
        }
    }

    /// `LayerNormalization` on the last axis with `n`'s affine weights.
    pub fn layer_norm<B: Backend>(
        &mut self,
        x: &str,
        n: &LayerNorm<B>,
        eps: f64,
        name: &str,
    ) -> Result<String, OnnxError> {
        let g = self.param(&format!("{name}.gamma"), &n.gamma)?;
        let mut inputs = vec![x.to_string(), g];
        if let Some(b) = &n.beta {
            inputs.push(self.param(&format!("{name}.beta"), b)?);
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.node(
            "LayerNormalization",
            &refs,
            vec![attr_i("axis", -1), attr_f("epsilon", eps as f32)],
        ))
    }

    /// A 2-D convolution with burn's `[out, in/groups, kh, kw]` weight.
    pub fn conv<B: Backend>(
        &mut self,
        x: &str,
        c: &Conv2d<B>,
        name: &str,
    ) -> Result<String, OnnxError> {
        let pads = match c.padding {
            PaddingConfig2d::Explicit(top, left, bottom, right) => {
                [top as i64, left as i64, bottom as i64, right as i64]
            }
            PaddingConfig2d::Valid => [0; 4],
            PaddingConfig2d::Same => {
                return Err(OnnxError::Unsupported(format!(
                    "{name}: convolution with `Same` padding"
                )));
            }
        };
        let w = self.param(&format!("{name}.weight"), &c.weight)?;
        let mut inputs = vec![x.to_string(), w];
        if let Some(b) = &c.bias {
            inputs.push(self.param(&format!("{name}.bias"), b)?);
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let [kh, kw] = c.kernel_size;
        Ok(self.node(
            "Conv",
            &refs,
            vec![
                attr_ints("kernel_shape", &[kh as i64, kw as i64]),
                attr_ints("strides", &[c.stride[0] as i64, c.stride[1] as i64]),
                attr_ints("dilations", &[c.dilation[0] as i64, c.dilation[1] as i64]),
                // ONNX: [top, left, bottom, right] (begins, then ends).
                attr_ints("pads", &[pads[0], pads[1], pads[2], pads[3]]),
                attr_i("group", c.groups as i64),
            ],
        ))
    }

    /// `x · sigmoid(x)`.
    pub fn silu(&mut self, x: &str) -> String {
        let s = self.node("Sigmoid", &[x], vec![]);
        self.node("Mul", &[x, &s], vec![])
    }

    /// The graph message.
    pub fn finish(self, name: &str) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: name.into(),
            initializer: self.initializers,
            doc_string: String::new(),
            input: self.inputs,
            output: self.outputs,
        }
    }
}
