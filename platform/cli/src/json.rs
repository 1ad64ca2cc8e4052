//! Protobuf messages as JSON for `--output json`: the canonical proto3 JSON mapping (as
//! grpcurl prints it), keeping the proto field names, with every field present. Read
//! through the descriptor set the services serve for reflection, so a field added to a
//! message shows up here without code.

use std::sync::LazyLock;

use anyhow::Context;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

static POOL: LazyLock<Result<DescriptorPool, prost_reflect::DescriptorError>> =
    LazyLock::new(|| DescriptorPool::decode(micros_proto::FILE_DESCRIPTOR_SET));

/// `message` in the proto3 JSON mapping: enums by name, timestamps in RFC 3339, 64-bit
/// integers as numbers (scripts compare them), default values written out.
pub fn message<M: prost::Message + prost::Name>(message: &M) -> anyhow::Result<serde_json::Value> {
    let pool = POOL
        .as_ref()
        .map_err(|error| anyhow::anyhow!("the compiled-in descriptor set: {error}"))?;
    let name = M::full_name();
    let descriptor = pool
        .get_message_by_name(&name)
        .with_context(|| format!("{name} is not in the compiled-in descriptor set"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .with_context(|| format!("re-reading a {name}"))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .with_context(|| format!("writing a {name} as JSON"))
}

#[cfg(test)]
mod tests {
    use micros_proto::orchestrator::v1 as pb;

    use super::*;

    #[test]
    fn a_message_keeps_proto_names_enum_names_and_defaults() {
        let operation = pb::Operation {
            operation_id: "op_1".into(),
            state: pb::OperationState::Halted as i32,
            targets_total: 3,
            create_time: Some(prost_types::Timestamp {
                seconds: 1_650_000_000,
                nanos: 0,
            }),
            ..Default::default()
        };
        let json = message(&operation).unwrap();
        assert_eq!(json["operation_id"], "op_1");
        assert_eq!(json["state"], "OPERATION_STATE_HALTED");
        assert_eq!(json["targets_total"], 3);
        assert_eq!(json["targets_done"], 0, "defaults are written: {json}");
        assert_eq!(json["create_time"], "2022-04-15T05:20:00Z");
        assert_eq!(json["halt_reason"], "");
    }
}
