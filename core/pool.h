/* core/pool.h */
