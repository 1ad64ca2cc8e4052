//! Generated Rust for the Micros gRPC contracts, and the encoded descriptor set that
//! reflection serves so that `grpcurl list` and `describe` work against every service.

pub mod lifecycle {
    pub mod v1 {
        tonic::include_proto!("micros.lifecycle.v1");
    }
}

pub mod catalog {
    pub mod v1 {
        tonic::include_proto!("micros.catalog.v1");
    }
}

pub mod license {
    pub mod v1 {
        tonic::include_proto!("micros.license.v1");
    }
}

pub mod orchestrator {
    pub mod v1 {
        tonic::include_proto!("micros.orchestrator.v1");
    }
}

pub mod identity {
    pub mod v1 {
        tonic::include_proto!("micros.identity.v1");
    }
}

pub mod productdata {
    pub mod v1 {
        tonic::include_proto!("micros.productdata.v1");
    }
}

pub mod media {
    pub mod v1 {
        tonic::include_proto!("micros.media.v1");
    }
}

/// Served by no production binary: the platform's tests use it to hold calls open.
pub mod testing {
    pub mod v1 {
        tonic::include_proto!("micros.testing.v1");
    }
}

/// Every Micros proto file, encoded, for the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("micros_descriptor");
